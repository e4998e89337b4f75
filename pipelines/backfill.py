"""The backfill: archived events (JSONL or Avro files, any Beam filesystem glob) through
the same chain as the stream (``pipelines/chain.py``), batch, into the store or files.

Batch composition (``pipelines/chain.py``): one shuffle of the raw records by browser,
in lists, and lists of rows into the sinks, so Beam's per-element cost is paid per
list. ``--workers N`` (default: 2 on a machine with 2 or more CPUs) runs the Direct
runner's workers in N processes; an embedded (chdb://) store is then opened by this
process only and served to the workers over HTTP (``radixinsight.store.server``), as
a chDB directory has one owner.

Rerunning a backfill does not duplicate: ``events`` collapses copies by ``event_id``,
sessions have ids derived from their browser and start, identity links are keyed by
their pair (all ReplacingMergeTree tables, read with FINAL). Bad rows are appended to
``events_invalid`` again on every run (a log of failures, not deduplicated).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import apache_beam as beam
import orjson
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.chain import RAW_SEEN, ChainConfig, ProcessRawEvents, chain_config
from pipelines.options import ChainOptions
from pipelines.runners import runner_args
from pipelines.streaming import EVENT_COLUMNS
from transforms.archive_io import ReadRawEvents
from transforms.clickhouse_sink import WriteToClickHouse, failed_rows
from transforms.identity import IDENTITY_COLUMNS
from transforms.results import BAD
from transforms.sessions import SESSION_COLUMNS


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
        parser.add_argument("--workers", type=int, default=None,
                            help="Direct runner: worker processes (default 2 when the "
                                 "machine has 2+ CPUs, else 1); an embedded store is "
                                 "served to them from this process")


def build(p: beam.Pipeline, source: beam.PTransform, sinks: dict[str, beam.PTransform],
          cfg: ChainConfig) -> None:
    """``source`` yields raw bytes (``raw``) and unreadable records as bad rows (``BAD``),
    as ``ReadRawEvents`` does; sinks by table: ``events``, ``identities`` and
    ``sessions`` take lists of rows, ``invalid`` takes bad rows."""
    read = p | "Read" >> source
    out = read.raw | "ProcessEvents" >> ProcessRawEvents(cfg, streaming=False)
    stored = [out["events"] | "WriteEvents" >> sinks["events"],
              out["identities"] | "WriteIdentities" >> sinks["identities"],
              out["sessions"] | "WriteSessions" >> sinks["sessions"]]
    ((out["bad"], read[BAD], *(pc for s in stored for pc in failed_rows(s)))
     | "AllBadRows" >> beam.Flatten() | "WriteInvalid" >> sinks["invalid"])


def store_sinks(store: str | None) -> dict[str, beam.PTransform]:
    """The stream's tables, written from lists of rows (``batches=True``)."""
    from transforms.invalid_rows import INVALID_COLUMNS, invalid_row

    return {
        "events": WriteToClickHouse(store, "events", EVENT_COLUMNS, batches=True),
        "invalid": WriteToClickHouse(store, "events_invalid", INVALID_COLUMNS,
                                     to_row=invalid_row),
        "identities": WriteToClickHouse(store, "identities", IDENTITY_COLUMNS, batches=True),
        "sessions": WriteToClickHouse(store, "sessions", SESSION_COLUMNS, batches=True),
    }


def _rows_of(batch: Any) -> Any:
    return batch


def _json_line(row: dict[str, Any]) -> str:
    return orjson.dumps(row, default=str).decode()


class _WriteJsonLines(beam.PTransform):
    def __init__(self, path: str, batches: bool) -> None:
        super().__init__()
        self._path, self._batches = path, batches

    def expand(self, rows):
        if self._batches:
            rows = rows | "Rows" >> beam.FlatMap(_rows_of)
        return (rows | "ToJson" >> beam.Map(_json_line)
                | "Write" >> beam.io.WriteToText(self._path, shard_name_template="",
                                                 num_shards=1))


def file_sinks(directory: str) -> dict[str, beam.PTransform]:
    names = {"events": "events", "invalid": "events_invalid", "identities": "identities",
             "sessions": "sessions"}
    return {key: _WriteJsonLines(f"{directory.rstrip('/')}/{name}.jsonl", key != "invalid")
            for key, name in names.items()}


def _progress(stop: threading.Event, say) -> None:
    start = time.monotonic()
    while not stop.wait(1.0):
        seen = RAW_SEEN[0]
        elapsed = time.monotonic() - start
        if seen:  # counted in this process: the Direct runner with one worker
            say(f"\r  {seen:,} events read, {seen / elapsed:,.0f}/s ", end="")
        else:
            say(f"\r  running, {elapsed:,.0f} s ", end="")


def default_workers() -> int:
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def _is_direct(argv: list[str]) -> bool:
    return any(a in ("--runner=FnApiRunner", "--runner=DirectRunner") for a in argv)


def embedded_path(store: str | None) -> tuple[Path, str | None] | None:
    """(directory, database) of an embedded chdb:// store URL (None: the default); None
    for a server URL."""
    from radixinsight.store import default_url

    parts = urlsplit(store or default_url())
    if parts.scheme != "chdb":
        return None
    return Path(parts.path), parse_qs(parts.query).get("database", [None])[0]


@contextlib.contextmanager
def _served(store: str | None, workers: int) -> Iterator[str | None]:
    """The store URL for the workers: with several worker processes an embedded store is
    served by this process (one owner per chDB directory); otherwise ``store``."""
    embedded = embedded_path(store) if workers > 1 else None
    if embedded is None:
        yield store
        return
    from radixinsight.store.server import StoreServer

    path, database = embedded
    path.mkdir(parents=True, exist_ok=True)
    with StoreServer(path, port=0) as server:
        yield server.url + (f"/?database={database}" if database else "")


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
    workers = 1
    if _is_direct(argv):
        workers = opts.workers or default_workers()
        if workers > 1:
            argv += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
            options = PipelineOptions(argv)
    if opts.output != "store" and not opts.output.startswith("jsonl:"):
        raise ValueError(f"--output must be 'store' or jsonl:DIR, not {opts.output!r}")
    started = time.monotonic()
    RAW_SEEN[0] = 0
    with _served(store if opts.output == "store" else None, workers) as url:
        if opts.output == "store":
            from radixinsight.store import connect
            from radixinsight.store.migrate import migrate

            migrate(connect(url))
            sinks = store_sinks(url)
        else:
            sinks = file_sinks(opts.output.removeprefix("jsonl:"))
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
    counts: dict[str, Any] = {"seconds": round(time.monotonic() - started, 2),
                              "workers": workers}
    counts.update(_metrics(result))
    counts["events_read"] = counts.pop("backfill.events_read", 0)
    say(f"\rbackfill: {counts}")
    return counts


def _metrics(result: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in result.metrics().query()["counters"]:
        name = f"{c.key.metric.namespace}.{c.key.metric.name}"
        out[name] = out.get(name, 0) + int(c.committed or c.attempted or 0)
    return out
