"""Insert throughput into `events`: embedded chDB vs the HTTP store server.

Prints one JSON line: rows/s for insert_arrow and insert (Native, lz4) on each
path and the server/embedded ratios. The server runs in a subprocess (chDB
allows one data directory per process); the embedded store in this one.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa

from radixinsight.store import connect
from radixinsight.store.migrate import migrate

ROWS = 100_000
REPEATS = 5


def _events(n: int) -> pa.Table:
    now = dt.datetime.now(dt.UTC)
    ts = [now - dt.timedelta(seconds=i) for i in range(n)]
    names = ["page_view", "click", "signup", "purchase"]
    return pa.table({
        "event_id": [str(uuid.uuid4()) for _ in range(n)],
        "event_name": [names[i % 4] for i in range(n)],
        "event_type": ["page" if i % 4 == 0 else "action" for i in range(n)],
        "project_id": ["p1"] * n,
        "timestamp": pa.array(ts, pa.timestamp("ms", tz="UTC")),
        "received_at": pa.array(ts, pa.timestamp("ms", tz="UTC")),
        "user_id": [f"u{i % 5000}" for i in range(n)],
        "session_id": [f"s{i % 20000}" for i in range(n)],
        "page_path": [f"/p/{i % 300}" for i in range(n)],
        "properties": [json.dumps({"i": i, "plan": "pro"}) for i in range(n)],
        "country": ["DE" if i % 3 else "US" for i in range(n)],
        "browser": ["Chrome" if i % 2 else "Firefox" for i in range(n)],
        "is_bot": pa.array([0] * n, pa.uint8()),
    })


def _rate(client, table: pa.Table, method: str) -> float:
    rows = table.to_pylist() if method == "insert" else None
    cols = table.column_names
    if rows is not None:
        rows = [[r[c] for c in cols] for r in rows]
        for r in rows:
            r[0] = uuid.UUID(r[0])
    best = float("inf")
    for _ in range(REPEATS):
        client.command("TRUNCATE TABLE events")
        start = time.perf_counter()
        if rows is None:
            client.insert_arrow("events", table)
        else:
            client.insert("events", rows, column_names=cols)
        best = min(best, time.perf_counter() - start)
    assert client.command("SELECT count() FROM events") == table.num_rows
    return table.num_rows / best


def _start_server(path: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "radixinsight.store.server", "--path", str(path), "--port", "0"],
        stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line.rsplit(" on ", 1)[1].strip()


def main() -> None:
    table = _events(ROWS)
    tmp = Path(tempfile.mkdtemp(prefix="store-bench-"))
    proc, url = _start_server(tmp / "served")
    try:
        remote = connect(url)
        migrate(remote)
        local = connect(f"chdb://{tmp / 'embedded'}")
        migrate(local)
        figures = {
            "rows": ROWS,
            "embedded_insert_arrow_rows_s": _rate(local, table, "insert_arrow"),
            "server_insert_arrow_rows_s": _rate(remote, table, "insert_arrow"),
            "embedded_insert_native_rows_s": _rate(local, table, "insert"),
            "server_insert_native_lz4_rows_s": _rate(remote, table, "insert"),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    figures["arrow_ratio_server_vs_embedded"] = (
        figures["server_insert_arrow_rows_s"] / figures["embedded_insert_arrow_rows_s"])
    figures["native_ratio_server_vs_embedded"] = (
        figures["server_insert_native_lz4_rows_s"] / figures["embedded_insert_native_rows_s"])
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
