"""The backfill: archived events (JSONL or Avro files, any Beam filesystem glob) through
the same chain as the stream (``pipelines/chain.py``), batch, into the store or files.

Rerunning a backfill does not duplicate: ``events`` collapses copies by ``event_id``,
sessions have ids derived from their browser and start, identity links are keyed by
their pair (all ReplacingMergeTree tables, read with FINAL). Bad rows are appended to
``events_invalid`` again on every run (a log of failures, not deduplicated).
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
import orjson
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.chain import ChainConfig, ProcessRawEvents, chain_config
from pipelines.options import ChainOptions
from pipelines.runners import runner_args
from pipelines.streaming import store_sinks
from transforms.archive_io import ReadRawEvents
from transforms.clickhouse_sink import failed_rows
from transforms.results import BAD


class BackfillOptions(PipelineOptions):
    """The backfill's own flags; the chain's (store, projects, ...) are ChainOptions."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        # Not required=True: Beam parses every options class for every pipeline.
        parser.add_argument("--input", default=None,
                            help="glob of archived files (local, gs://, s3://, ...); required")
        parser.add_argument("--format", default="jsonl", choices=["jsonl", "avro"],
                            help="jsonl: one event or collector envelope per line; "
                                 "avro: files written by the archive job")
        parser.add_argument("--output", default="store",
                            help="'store' (ClickHouse, see --store) or jsonl:DIR "
                                 "(one file per table)")


# Inputs seen so far, for the progress line: the Direct runner used by default runs
# its worker in this process (on Flink the counts come from the metrics at the end).
_SEEN = [0]


def _count(raw: bytes) -> bytes:
    _SEEN[0] += 1
    return raw


def build(p: beam.Pipeline, source: beam.PTransform, sinks: dict[str, beam.PTransform],
          cfg: ChainConfig) -> None:
    """``source`` yields raw bytes (``raw``) and unreadable records as bad rows (``BAD``),
    as ``ReadRawEvents`` does; sinks by table: ``events``, ``invalid``, ``identities``,
    ``sessions``."""
    read = p | "Read" >> source
    raw = read.raw | "Progress" >> beam.Map(_count)
    out = raw | "ProcessEvents" >> ProcessRawEvents(cfg, streaming=False)
    stored = [out["events"] | "WriteEvents" >> sinks["events"],
              out["identities"] | "WriteIdentities" >> sinks["identities"],
              out["sessions"] | "WriteSessions" >> sinks["sessions"]]
    ((out["bad"], read[BAD], *(pc for s in stored for pc in failed_rows(s)))
     | "AllBadRows" >> beam.Flatten() | "WriteInvalid" >> sinks["invalid"])


def _json_line(row: dict[str, Any]) -> str:
    return orjson.dumps(row, default=str).decode()


class _WriteJsonLines(beam.PTransform):
    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def expand(self, rows):
        return (rows | "ToJson" >> beam.Map(_json_line)
                | "Write" >> beam.io.WriteToText(self._path, shard_name_template="",
                                                 num_shards=1))


def file_sinks(directory: str) -> dict[str, beam.PTransform]:
    names = {"events": "events", "invalid": "events_invalid", "identities": "identities",
             "sessions": "sessions"}
    return {key: _WriteJsonLines(f"{directory.rstrip('/')}/{name}.jsonl")
            for key, name in names.items()}


def _progress(stop: threading.Event, say) -> None:
    start = time.monotonic()
    while not stop.wait(1.0):
        seen = _SEEN[0]
        say(f"\r  {seen:,} events read, {seen / (time.monotonic() - start):,.0f}/s ", end="")


def run(argv: list[str] | None = None, say=print) -> dict[str, Any]:
    """Run the backfill to completion; returns the counts."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith("--runner") for a in argv):
        argv.append("--runner=direct")
    argv = runner_args(argv, streaming=False)
    if "--runner=DirectRunner" in argv:  # batch on the in-process FnApiRunner, no Prism
        argv[argv.index("--runner=DirectRunner")] = "--runner=FnApiRunner"
    options = PipelineOptions(argv)
    opts, store = options.view_as(BackfillOptions), options.view_as(ChainOptions).store
    if not opts.input:
        raise ValueError("--input GLOB is required (the archived files to backfill)")
    if opts.output == "store":
        from radixinsight.store import connect
        from radixinsight.store.migrate import migrate

        migrate(connect(store))
        sinks = store_sinks(store)
    elif opts.output.startswith("jsonl:"):
        sinks = file_sinks(opts.output.removeprefix("jsonl:"))
    else:
        raise ValueError(f"--output must be 'store' or jsonl:DIR, not {opts.output!r}")
    started = time.monotonic()
    _SEEN[0] = 0
    p = beam.Pipeline(options=options)
    build(p, ReadRawEvents(opts.input, opts.format), sinks,
          chain_config(options, bare_received_at=datetime.now(UTC).isoformat()))
    stop = threading.Event()
    ticker = threading.Thread(target=_progress, args=(stop, say), daemon=True)
    ticker.start()
    try:
        result = p.run()
        result.wait_until_finish()
    finally:
        stop.set()
        ticker.join()
    counts = {"events_read": _SEEN[0], "seconds": round(time.monotonic() - started, 2)}
    counts.update(_metrics(result))
    say(f"\rbackfill: {counts}")
    return counts


def _metrics(result: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in result.metrics().query()["counters"]:
        name = f"{c.key.metric.namespace}.{c.key.metric.name}"
        out[name] = out.get(name, 0) + int(c.committed or c.attempted or 0)
    return out
