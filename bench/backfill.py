"""Backfill throughput: ``radixinsight pipeline backfill`` (Direct runner) vs a plain loop.

Both take the same JSONL archive of realistic events (bench/enrich.py's generator:
Zipf user agents, random public IPs, mixed referrers and UTM) into embedded chDB.
The plain loop runs the same functions (decode, validate, dedup, enrich, identity,
sessions) in one Python loop and inserts with the sink's Arrow conversion in bulk
(100k-row inserts), in ONE process; the backfill runs the Beam pipeline on the
FnApiRunner with ``--workers`` worker processes (the backfill's default: 2 on a
2-CPU machine; the embedded store is then served to them by the main process), so
with 2 workers the ratio compares two cores against one. Both figures are wall
clock from start to all rows stored (the backfill's includes starting its workers
and migrating). Prints ONE JSON line:

    {"bench": "backfill", "events": .., "workers": .., "plain_eps": ..,
     "backfill_eps": .., "ratio_backfill_to_plain": .., ...}

Usage: python bench/backfill.py [--events 1000000] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import enrich as enrich_bench  # noqa: E402  (bench/enrich.py: event generator, City DB)

from pipelines.backfill import run as run_backfill  # noqa: E402
from pipelines.streaming import EVENT_COLUMNS  # noqa: E402
from radixinsight.store import connect  # noqa: E402
from radixinsight.store.migrate import migrate  # noqa: E402
from transforms.clickhouse_sink import arrow_schema, build_table  # noqa: E402
from transforms.enrichments import EnrichConfig, enrich_row, geo, open_chain  # noqa: E402
from transforms.identity import resolve  # noqa: E402
from transforms.parse import decode_envelope  # noqa: E402
from transforms.sessions import SESSION_COLUMNS, session_key, split_sessions  # noqa: E402
from transforms.validate import ValidateConfig, validate_envelope  # noqa: E402

CHUNK = 100_000


def _insert(client, table: str, columns, rows: list[dict]) -> None:
    types = dict(client.query(f"SELECT name, type FROM system.columns WHERE table = '{table}' "
                              "AND database = currentDatabase()").result_rows)
    built = build_table(rows, arrow_schema(types, columns))
    client.insert_arrow(table, built.table)


def sessions_of(rows: list[tuple[tuple[str, str], dict]], gap_s: float) -> list[dict]:
    by_key: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for key, row in rows:
        by_key[key].append(row)
    return [s for (project, key), events in by_key.items()
            for s in split_sessions(project, key, events, gap_s, 1)]


def plain_loop(lines: list[bytes], store: str, validate: ValidateConfig,
               enrich: EnrichConfig) -> float:
    client = connect(store)
    chain = open_chain(enrich)
    received = datetime.now(UTC).isoformat()
    start = time.perf_counter()
    seen: set = set()
    links: dict[tuple[str, str], str] = {}
    buffer: list[dict] = []
    session_input: list[tuple[tuple[str, str], dict]] = []
    for line in lines:
        row = validate_envelope(decode_envelope(line, received), validate)
        if row["event_id"] in seen:
            continue
        seen.add(row["event_id"])
        row = enrich_row(row, chain)
        key = (row["project_id"], row["anonymous_id"] or "user:" + row["user_id"])
        resolved, _link, links_to = resolve(row, links.get(key))
        if links_to is not None:
            links[key] = links_to
        row["resolved_user_id"] = resolved
        session_input.append((session_key(row), {k: row[k] for k in (
            "timestamp", "event_type", "page_path", "resolved_user_id", "anonymous_id",
            "session_id")}))
        buffer.append(row)
        if len(buffer) >= CHUNK:
            _insert(client, "events", EVENT_COLUMNS, buffer)
            buffer = []
    if buffer:
        _insert(client, "events", EVENT_COLUMNS, buffer)
    _insert(client, "sessions", SESSION_COLUMNS, sessions_of(session_input, 1800))
    return len(lines) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=None,
                    help="the backfill's --workers (default: its own default)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="radix-bench-backfill-"))
    db = work / "city.mmdb"
    enrich_bench.build_city_db(db)
    lines = enrich_bench.make_events(args.events)
    (work / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    base = f"chdb://{work / 'store'}"
    admin = connect(base)
    for database in ("plain", "beam"):
        admin.command(f"CREATE DATABASE {database}")
        migrate(connect(f"{base}?database={database}"))
    enrich = EnrichConfig({"geo": geo.Config(db_path=str(db))})
    plain_eps = plain_loop(lines, f"{base}?database=plain", ValidateConfig(), enrich)
    del lines
    counts = run_backfill([f"--input={work / 'in.jsonl'}", "--output=store",
                           f"--store={base}?database=beam", f"--geoip_db={db}",
                           *([f"--workers={args.workers}"] if args.workers else [])],
                          say=lambda *a, **k: None)
    backfill_eps = counts["events_read"] / counts["seconds"]
    stored = {d: admin.query(f"SELECT count() FROM {d}.events FINAL").result_rows[0][0]
              for d in ("plain", "beam")}
    print(json.dumps({
        "bench": "backfill", "events": args.events, "workers": counts["workers"],
        "plain_processes": 1, "plain_eps": round(plain_eps),
        "backfill_eps": round(backfill_eps),
        "ratio_backfill_to_plain": round(backfill_eps / plain_eps, 3),
        "stored_plain": stored["plain"], "stored_backfill": stored["beam"],
        "backfill_seconds": counts["seconds"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }))


if __name__ == "__main__":
    main()
