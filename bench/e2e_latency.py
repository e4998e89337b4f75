"""End-to-end rate and latency: POST /collect -> Kafka -> streaming job -> ClickHouse.

For each runner it starts the real pieces (a Kafka broker, the store server, the
collector, the streaming job), all on loopback in a temp dir, offers a steady load
of batches of 10 events for a while, and records when each batch became visible
in ``events``. Prints ONE JSON line:

    {"bench": "e2e_latency", "machine": {...}, "rate_target_eps": ..., "runners": {
        "prism": {"sent": .., "stored": .., "sustained_eps": .., "p50_s": .., "p95_s": ..,
                  "max_s": ..}, "flink": {...}}}

Usage: python bench/e2e_latency.py [--rate 1000] [--seconds 30] [--runners prism,flink]
       [--events_per_browser 10] [--senders 16] [--job_arg=--some_job_flag=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from collector.projects import Registry  # noqa: E402
from radixinsight import procs  # noqa: E402
from radixinsight.services.kafka_broker import KafkaBroker, create_topics  # noqa: E402
from radixinsight.store import connect  # noqa: E402
from radixinsight.store.migrate import migrate  # noqa: E402
from radixinsight.store.server import StoreServer  # noqa: E402

KEY = "bench-key"
BATCH = 10


BROWSERS = 5000
SENDERS = 16  # concurrent keep-alive sessions offering the load


def event(batch_no: int, i: int, per_browser: int = BATCH) -> dict:
    """Event ``i`` of batch ``batch_no``; ``per_browser`` consecutive events share a browser
    (BATCH: one browser per request, as the JS SDK sends; 1: every event another browser,
    as a server-side producer batching many users may)."""
    browser = (batch_no * BATCH + i) // per_browser % BROWSERS
    return {"event_id": str(uuid.uuid4()), "event_name": "bench_event", "project_id": "bench",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "user": {"anonymous_id": f"a{browser}"},
            "properties": {"b": batch_no}}


def spawn(args: list[str], log: Path, env: dict[str, str]) -> int:
    return procs.spawn([sys.executable, "-m", "radixinsight.cli", *args], pid_file=log.with_suffix(
        ".pid"), log_file=log, env=env, cwd=REPO)


def offer_load(url: str, rate_eps: float, seconds: float, sent_at: dict[int, float],
               threads: int = SENDERS, per_browser: int = BATCH) -> int:
    """Send batches at ``rate_eps`` from ``threads`` keep-alive sessions; returns events sent.
    Each session waits for its answer before sending again, so the sessions must outnumber
    rate x answer time: with 4, a collector answering in 20+ ms on a loaded box capped
    the offered rate below the target."""
    batches = int(rate_eps * seconds / BATCH)
    interval = BATCH / rate_eps
    start = time.monotonic()
    counter = iter(range(batches))
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        http = requests.Session()
        while True:
            with lock:
                b = next(counter, None)
            if b is None:
                return
            due = start + b * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = orjson.dumps([event(b, i, per_browser) for i in range(BATCH)])
            sent_at[b] = time.monotonic()
            resp = http.post(url, data=body, timeout=30,
                             headers={"X-API-Key": KEY, "Content-Type": "application/json"})
            if resp.status_code != 202:
                failures.append(f"{resp.status_code} {resp.text[:200]}")

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if failures:
        raise RuntimeError(f"{len(failures)} batches refused, e.g. {failures[0]}")
    return batches * BATCH


def watch(client, sent_at: dict[int, float], seen_at: dict[int, float], stop: threading.Event,
          every_s: float = 0.25) -> None:
    """Record when each batch is complete (all BATCH rows visible) in ``events``.

    Every 0.25 s: finer than the latencies measured. The query runs on the same two
    cores as the job, so it reads only rows received since the oldest batch not yet
    seen (less a margin), not the whole table each time."""
    wall_minus_mono = time.time() - time.monotonic()
    while not stop.is_set():
        pending = [sent_at[b] for b in list(sent_at) if b not in seen_at]
        since = (min(pending) if pending else time.monotonic()) + wall_minus_mono - 10
        rows = client.query(
            "SELECT JSONExtractInt(properties, 'b') AS b, count() FROM events "
            "WHERE project_id = 'bench' AND received_at >= fromUnixTimestamp64Milli({ms:Int64}) "
            "GROUP BY b", parameters={"ms": int(since * 1000)}).result_rows
        now = time.monotonic()
        for b, n in rows:
            if n >= BATCH and b not in seen_at and b in sent_at:
                seen_at[b] = now
        time.sleep(every_s)


def run_runner(runner: str, broker: KafkaBroker, store_url: str, work: Path, rate: float,
               seconds: float, job_args: list[str], per_browser: int = BATCH,
               senders: int = SENDERS) -> dict:
    database = f"bench_{runner}_{uuid.uuid4().hex[:6]}"
    connect(store_url).command(f"CREATE DATABASE {database}")
    db_url = f"{store_url}/{database}"
    migrate(connect(db_url))
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    create_topics(broker.bootstrap, [f"{prefix}.events.raw"], partitions=2)
    port = procs.free_port()
    env = {"RADIX_KAFKA_BOOTSTRAP": broker.bootstrap, "RADIX_PROJECTS": str(work / "projects.json"),
           "RADIX_TOPIC_PREFIX": prefix}
    job = ["pipeline", "stream", f"--runner={runner}", f"--projects={work / 'projects.json'}",
           f"--kafka_bootstrap={broker.bootstrap}",
           f"--store={db_url}", f"--topic_prefix={prefix}", *job_args]
    pids = [spawn(["collector", "serve", "--port", str(port)],
                  work / f"collector-{runner}.log", env),
            spawn(job, work / f"pipeline-{runner}.log", env)]
    client = connect(db_url)
    url = f"http://127.0.0.1:{port}/collect"
    try:
        procs.wait_until(lambda: procs.port_open(port), timeout_s=60, what="collector")
        # warm-up: the job is running once one batch is visible
        warm: dict[int, float] = {}
        offer_load(url, 50, 0.2, warm, threads=1)
        deadline = time.monotonic() + 300
        while client.query("SELECT count() FROM events").result_rows[0][0] < BATCH:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{runner}: warm-up batch never arrived")
            time.sleep(0.5)
        client.command("TRUNCATE TABLE events")
        sent_at: dict[int, float] = {}
        seen_at: dict[int, float] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=watch, args=(connect(db_url), sent_at, seen_at, stop))
        watcher.start()
        t0 = time.monotonic()
        sent = offer_load(url, rate, seconds, sent_at, threads=senders, per_browser=per_browser)
        offered_s = time.monotonic() - t0
        drain_deadline = time.monotonic() + 120
        while len(seen_at) < len(sent_at) and time.monotonic() < drain_deadline:
            time.sleep(0.2)
        stop.set()
        watcher.join()
        latencies = sorted(seen_at[b] - sent_at[b] for b in seen_at)
        stored = client.query("SELECT count() FROM events FINAL").result_rows[0][0]
        last = max(seen_at.values()) if seen_at else t0
        return {
            "sent": sent, "stored": int(stored), "offered_eps": round(sent / offered_s),
            "sustained_eps": round(len(seen_at) * BATCH / (last - t0)),
            "p50_s": round(statistics.median(latencies), 3),
            "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3),
            "max_s": round(latencies[-1], 3),
        }
    finally:
        for pid in pids:
            procs.stop_pid(pid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1000, help="offered events/s")
    ap.add_argument("--seconds", type=float, default=30, help="how long to offer load")
    ap.add_argument("--runners", default="prism,flink")
    ap.add_argument("--job_arg", action="append", default=[],
                    help="extra flag for the streaming job (repeatable), e.g. "
                         "--job_arg=--max_cache_memory_usage_mb=0")
    ap.add_argument("--events_per_browser", type=int, default=BATCH,
                    help="consecutive events from one browser: 10 = one browser per request "
                         "(as the JS SDK batches), 1 = every event from another browser")
    ap.add_argument("--senders", type=int, default=SENDERS,
                    help="concurrent HTTP sessions offering the load")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="radix-bench-"))
    reg = Registry({})
    reg.add_key("bench", KEY)
    reg.save(work / "projects.json")
    broker = KafkaBroker(work / "kafka").start()
    store = StoreServer(work / "store", port=0).start()
    results = {}
    try:
        for runner in args.runners.split(","):
            print(f"[e2e_latency] {runner}: {args.rate:.0f} ev/s for {args.seconds:.0f}s…",
                  file=sys.stderr)
            try:
                results[runner] = run_runner(runner, broker, store.url, work, args.rate,
                                             args.seconds, args.job_arg,
                                             args.events_per_browser, args.senders)
            except TimeoutError as exc:  # one runner failing must not hide the other's figures
                results[runner] = {"error": str(exc), "log": str(work / f"pipeline-{runner}.log")}
    finally:
        store.stop()
        broker.stop()
    if any("error" in r for r in results.values()):
        print(f"[e2e_latency] logs kept in {work}", file=sys.stderr)
    else:  # the broker and store dirs hold every event sent: gigabytes after a few runs
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({
        "bench": "e2e_latency",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "rate_target_eps": args.rate, "seconds": args.seconds, "batch": BATCH,
        "job_args": args.job_arg, "events_per_browser": args.events_per_browser,
        "browsers": BROWSERS, "senders": args.senders,
        "runners": results,
    }))


if __name__ == "__main__":
    main()
