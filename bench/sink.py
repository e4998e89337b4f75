"""ClickHouse sink throughput vs raw ``insert_arrow`` of the same rows, same run, into chDB.

Rows: ``--distinct`` events made by the real chain (bench/enrich.py's generator ->
validate_envelope -> enrichments with a City database), copied up to ``--rows`` with
fresh event_ids and timestamps, so values and shape are those of the ``events`` sink.

Reference (``raw``): the same row dicts, per batch of ``--batch`` rows, turned into an
Arrow table the plain way (one list comprehension per column, ``pa.array`` with the
table's types, UUIDs as 16 bytes) and inserted with one ``insert_arrow`` each; no token,
no buffering, no metrics. ``raw_insert_only`` inserts pre-built tables (the store's share).
Sink: ``WriteToClickHouse``'s DoFn driven directly (setup/start_bundle/process/
finish_bundle) and inside a Beam pipeline on the FnApiRunner (the Direct runner's batch
engine) fed by ``beam.Create``, three ways: one row per element (``sink_rows``), rows
regrouped by ``beam.BatchElements`` into ``WriteToClickHouse(batches=True)``
(``sink_batchelements``), and a producer that emits lists of rows, as the backfill
does (``sink_lists``). Each pipeline figure is also given net of the same pipeline
with a no-op sink (``noop_*``). The reference builds its tables with the cyclic GC
paused, as the sink does, so the ratios measure the sink's own overhead. Each run
writes fresh event_ids into an emptied table (the tables keep a dedup window); best
of ``--repeats``.
Prints ONE JSON line. Usage: python bench/sink.py [--rows 100000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import apache_beam as beam  # noqa: E402
from apache_beam.runners.portability.fn_api_runner import FnApiRunner  # noqa: E402
from apache_beam.transforms.window import GlobalWindows  # noqa: E402

from bench.enrich import build_city_db, make_events  # noqa: E402
from pipelines.streaming import EVENT_COLUMNS  # noqa: E402
from radixinsight.store import connect  # noqa: E402
from radixinsight.store.migrate import migrate  # noqa: E402
from transforms.clickhouse_sink import RowBatch, WriteToClickHouse, arrow_schema  # noqa: E402
from transforms.enrichments import EnrichConfig, enrich_row, geo, open_chain  # noqa: E402
from transforms.parse import decode_envelope  # noqa: E402
from transforms.validate import ValidateConfig, validate_envelope  # noqa: E402

TABLES = ("events", "event_counts_daily", "sessions")  # events and its views' targets
SHAPES = ("rows", "batchelements", "lists")  # how the in-pipeline sink gets its rows


def make_base(distinct: int, work: Path, seed: int = 5) -> list[dict]:
    """``distinct`` events through the real validate + enrich chain."""
    db = work / "city.mmdb"
    build_city_db(db)
    chain = open_chain(EnrichConfig({"geo": geo.Config(db_path=str(db))}))
    received = datetime.now(UTC).isoformat()
    return [enrich_row(validate_envelope(decode_envelope(line, received), ValidateConfig()),
                       chain) for line in make_events(distinct, seed)]


def chunk_rows(i: int, base: list[dict], size: int, salt: int, now: datetime) -> list[dict]:
    """Rows [i*size, (i+1)*size): base rows with fresh event_ids (seeded by salt) and
    spread timestamps. A run must not meet an earlier run's ids (dedup tokens)."""
    rng = random.Random(salt * 1_000_003 + i)
    rows = []
    for j in range(i * size, (i + 1) * size):
        ts = now - timedelta(milliseconds=37 * j)
        rows.append({**base[j % len(base)], "timestamp": ts, "client_timestamp": ts,
                     "event_id": uuid.UUID(int=rng.getrandbits(128), version=4)})
    return rows


def reset(client) -> None:
    for table in TABLES:
        client.command(f"TRUNCATE TABLE {table}")


class _Clock:
    """Wall and process CPU seconds: on a shared 2-core machine the CPU time of this
    process (all its threads, chDB's included) is the steadier measure of cost."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def raw_table(rows: list[dict], schema: list[tuple[str, pa.DataType]]) -> pa.Table:
    cols = {}
    gc.disable()
    try:
        for name, typ in schema:
            values = [r[name] for r in rows]
            if typ == pa.binary(16):
                values = [v.bytes for v in values]
            cols[name] = pa.array(values, type=typ)
    finally:
        gc.enable()
    return pa.table(cols)


def time_raw(client, rows, schema, batch: int, prebuilt: bool) -> float:
    batches = [rows[i:i + batch] for i in range(0, len(rows), batch)]
    tables = [raw_table(b, schema) for b in batches] if prebuilt else None
    clock = _Clock()
    for i, b in enumerate(batches):
        client.insert_arrow("events", tables[i] if prebuilt else raw_table(b, schema))
    return clock.read()


def time_dofn(url: str, rows, batch: int) -> float:
    fn = WriteToClickHouse(url, "events", EVENT_COLUMNS, max_rows=batch)._fn
    wv = GlobalWindows.windowed_value(None)  # only used to emit failed rows
    fn.setup()
    fn._client_schema()  # connecting and DESCRIBE are setup costs, not per-row ones
    clock = _Clock()
    fn.start_bundle()
    process = fn.process
    for row in rows:
        process(row, wv)  # returns failed rows (none here) when it flushes
    fn.finish_bundle()
    elapsed = clock.read()
    fn.teardown()
    return elapsed


def _noop(row: dict) -> None:
    return None


def time_pipeline(url: str, base: list[dict], chunks: int, size: int, salt: int,
                  now: datetime, batch: int, sink: bool, shape: str) -> float:
    """Rows are made inside the pipeline from the base rows (``beam.Create`` of 100k
    dicts spends most of its time inferring their type when the pipeline is built).
    ``shape``: ``rows`` (one row per element), ``batchelements`` (rows regrouped by
    ``beam.BatchElements``) or ``lists`` (the producer emits lists of ``size`` rows)."""
    clock = _Clock()
    with beam.Pipeline(runner=FnApiRunner()) as p:
        chunk_ids = p | beam.Create(list(range(chunks)), reshuffle=False)
        if shape == "lists":
            rows = chunk_ids | beam.Map(chunk_rows, base, size, salt, now).with_output_types(
                RowBatch)
        else:
            rows = chunk_ids | beam.FlatMap(chunk_rows, base, size, salt, now)
            if shape == "batchelements":
                rows = rows | beam.BatchElements(min_batch_size=batch, max_batch_size=batch)
        if sink:
            rows | WriteToClickHouse(url, "events", EVENT_COLUMNS, max_rows=batch,
                                     batches=shape != "rows")
        else:
            rows | beam.Map(_noop)
    return clock.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--distinct", type=int, default=2_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="radix-bench-sink-"))
    atexit.register(shutil.rmtree, work, True)  # the store and the GeoIP file
    t0 = time.perf_counter()
    base = make_base(args.distinct, work)
    gen_s = time.perf_counter() - t0
    size, now = 1000, datetime.now(UTC)
    chunks = args.rows // size
    args.rows = chunks * size
    url = f"chdb://{work / 'store'}"
    client = connect(url)
    migrate(client)
    types = {r[0]: r[1] for r in client.query("DESCRIBE TABLE events").result_rows}
    schema = arrow_schema(types, EVENT_COLUMNS)
    runs: dict[str, list[tuple[float, float]]] = {
        "raw": [], "raw_insert_only": [], "sink_dofn": [],
        **{f"{kind}_{shape}": [] for shape in SHAPES for kind in ("sink", "noop")}}
    load = [os.getloadavg()[0]]
    salt = 0
    for _ in range(args.repeats):  # interleaved, so load changes hit every variant alike
        for name in runs:
            salt += 1
            rows = [r for i in range(chunks) for r in chunk_rows(i, base, size, salt, now)]
            reset(client)
            if name == "raw":
                runs[name].append(time_raw(client, rows, schema, args.batch, prebuilt=False))
            elif name == "raw_insert_only":
                runs[name].append(time_raw(client, rows, schema, args.batch, prebuilt=True))
            elif name == "sink_dofn":
                runs[name].append(time_dofn(url, rows, args.batch))
            else:
                rows = None  # made inside the pipeline
                kind, shape = name.split("_", 1)
                runs[name].append(time_pipeline(url, base, chunks, size, salt, now, args.batch,
                                                kind == "sink", shape))
            stored = client.command("SELECT count() FROM events")
            if stored != (0 if name.startswith("noop") else args.rows):
                raise SystemExit(f"{name}: {stored} rows stored, expected {args.rows}")
        load.append(os.getloadavg()[0])
    figures: dict[str, object] = {
        "bench": "sink", "rows": args.rows, "batch": args.batch,
        "distinct_enriched_rows": args.distinct, "columns": len(EVENT_COLUMNS)}
    for clock, idx in (("wall", 0), ("cpu", 1)):
        best = {k: min(x[idx] for x in v) for k, v in runs.items()}
        rate = {k: args.rows / v for k, v in best.items()}
        figures[clock] = {
            **{f"{k}_rows_s": round(v) for k, v in rate.items()},
            "ratio_dofn_to_raw": round(rate["sink_dofn"] / rate["raw"], 3),
            "ratio_dofn_to_raw_insert_only": round(
                rate["sink_dofn"] / rate["raw_insert_only"], 3),
        }
        for shape in SHAPES:
            net_s = best[f"sink_{shape}"] - best[f"noop_{shape}"]
            net = args.rows / net_s if net_s > 0 else None
            figures[clock] |= {
                f"sink_{shape}_net_rows_s": round(net) if net else None,
                f"ratio_{shape}_net_to_raw": round(net / rate["raw"], 3) if net else None,
                f"ratio_{shape}_to_raw": round(rate[f"sink_{shape}"] / rate["raw"], 3)}
    print(json.dumps({
        **figures,
        "runs_wall_s": {k: [round(x[0], 3) for x in v] for k, v in runs.items()},
        "row_generation_s": round(gen_s, 1),
        "loadavg_1m": [round(x, 2) for x in load],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }))


if __name__ == "__main__":
    main()
