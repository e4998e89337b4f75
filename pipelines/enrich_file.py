"""``radixinsight enrich``: parse -> validate -> enrich a JSONL file, batch, Direct runner.

Each input line is an event (as producers send it) or a collector envelope. Every
line comes out exactly once in the output: as an enriched row (ARCHITECTURE.md column
names) or as a bad row (it has ``failure``). Counts are printed at the end.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apache_beam as beam
import orjson
from apache_beam.options.pipeline_options import PipelineOptions

from transforms.chain import process_raw
from transforms.enrichments import EnrichConfig, open_chain
from transforms.validate import ValidateConfig

NAMESPACE = "radixinsight"  # the counters of transforms.chain.ProcessEvents


def row_json(row: dict[str, Any]) -> str:
    """One output line: datetimes as ISO 8601, UUIDs as text."""
    return orjson.dumps(row, default=str).decode()


# Lines written so far. The Direct runner used here runs its worker in this process,
# so the progress thread can read it while the job runs (Beam metrics are final only
# once the blocking run returns).
_LINES_DONE = [0]


def _output_line(row: dict[str, Any]) -> str:
    _LINES_DONE[0] += 1
    return row_json(row)


class _ToLinesFn(beam.DoFn):
    """parse -> validate -> enrich -> the output line, in one step: every extra stage costs
    Beam a per-element hand-off, which is most of this job's overhead."""

    def __init__(self, validate: ValidateConfig, enrich: EnrichConfig, received_at: str) -> None:
        self._validate, self._enrich, self._received_at = validate, enrich, received_at
        self._chain: Any = ()
        self._rows = beam.metrics.Metrics.counter(NAMESPACE, "rows")
        self._bad = beam.metrics.Metrics.counter(NAMESPACE, "bad_rows")

    def setup(self) -> None:
        self._chain = open_chain(self._enrich)

    def process(self, raw: bytes):
        ok, out = process_raw(raw, self._validate, self._chain, self._received_at)
        (self._rows if ok else self._bad).inc()
        yield _output_line(out)


def build(p: beam.Pipeline, input_glob: str, output: str, validate: ValidateConfig,
          enrich: EnrichConfig) -> None:
    received_at = datetime.now(UTC).isoformat()
    (p | "Read" >> beam.io.ReadFromText(input_glob, coder=beam.coders.BytesCoder())
     | "ProcessToLines" >> beam.ParDo(_ToLinesFn(validate, enrich, received_at)
                                      ).with_output_types(str)
     # Shards as the runner makes them, joined into one file after the run: a single
     # shard would shuffle every line through one GroupByKey (~40% of the job's time).
     | "Write" >> beam.io.WriteToText(output + SHARD_SUFFIX))


SHARD_SUFFIX = ".part"


def join_shards(output: str) -> None:
    """Concatenate ``OUTPUT.part-*`` into ``OUTPUT`` (in shard order) and remove them."""
    import glob
    import os
    import shutil

    shards = sorted(glob.glob(glob.escape(output + SHARD_SUFFIX) + "-*"))
    with open(output, "wb") as out:
        for shard in shards:
            with open(shard, "rb") as fh:
                shutil.copyfileobj(fh, out)
            os.remove(shard)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def _progress(total: int, stop: threading.Event) -> None:
    start = time.monotonic()
    while not stop.wait(0.5):
        done = _LINES_DONE[0]
        rate = done / max(time.monotonic() - start, 1e-6)
        sys.stderr.write(f"\r  {done:,}/{total:,} lines ({done / max(total, 1):.0%}), "
                         f"{rate:,.0f} lines/s ")
        sys.stderr.flush()


def _counter(result: Any, name: str) -> int:
    query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(
        NAMESPACE).with_name(name))["counters"]
    return int(sum(c.committed or 0 for c in query))


def run(input_path: str, output_path: str, validate: ValidateConfig, enrich: EnrichConfig,
        say=print) -> dict[str, int]:
    """Run the batch chain on the Direct runner (FnApiRunner); returns the counts."""
    path = Path(input_path)
    if not path.exists():
        raise FileNotFoundError(f"input {input_path} does not exist")
    total = _count_lines(path)
    opts = PipelineOptions(["--runner=FnApiRunner", "--direct_num_workers=1"])
    started = time.monotonic()
    p = beam.Pipeline(options=opts)
    build(p, str(path), output_path, validate, enrich)
    _LINES_DONE[0] = 0
    stop = threading.Event()
    ticker = threading.Thread(target=_progress, args=(total, stop), daemon=True)
    if sys.stderr.isatty() or total >= 10_000:
        ticker.start()
    try:
        result = p.run()
        result.wait_until_finish()
        join_shards(output_path)
    finally:
        stop.set()
        if ticker.is_alive():
            ticker.join()
    counts = {n: _counter(result, n) for n in ("rows", "bad_rows")}
    counts["lines"] = counts["rows"] + counts["bad_rows"]
    counts["seconds"] = round(time.monotonic() - started, 2)
    sys.stderr.write("\n")
    say(f"{counts['lines']:,} lines -> {counts['rows']:,} enriched rows + "
        f"{counts['bad_rows']:,} bad rows in {counts['seconds']}s -> {output_path}")
    return counts
