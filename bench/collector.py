"""Collector throughput and latency against a bare kafka-python producer, same broker, same run.

    python bench/collector.py [--workers 2] [--connections 50] [--seconds 20] [--profile]

Starts a Kafka broker (temp dir, loopback) and then, in order:
1. bare: one kafka-python producer loop (the collector's producer settings) sending the
   records the collector would write for the same events, for ``--seconds`` after a
   3 s warm-up (the collector gets one too);
2. max: ``radixinsight collector serve --workers N`` under wrk (a separate process):
   10-event batches, keep-alive, ``--connections`` connections, flat out;
3. half: wrk paced to half of the max request rate, for the p99 latency there;
4. with ``--profile``: py-spy samples one worker (all threads) under a flat-out load;
   the share of samples by area and the top functions go into the output.
Afterwards (once no request is in flight) the topic must hold exactly the events the
collector acknowledged (202). ``cpu`` gives, for the bare and the max phase, the cores
used by each process and by the whole machine (``other``: processes not in this bench,
e.g. someone else's work on a shared machine). Prints one JSON line. Needs ``wrk``
(Debian package; ``make setup`` installs it).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from collector.envelope import envelope_head, who, wrap  # noqa: E402
from collector.producer import producer_settings  # noqa: E402
from collector.projects import Project, Registry, WriteKey, hash_key  # noqa: E402
from radixinsight import procs  # noqa: E402
from radixinsight.services.kafka_broker import KafkaBroker, create_topics  # noqa: E402
from tests.fixtures.events import event  # noqa: E402

PROJECT, KEY, PREFIX = "bench", "bench-key", "bench"
PROFILE_OUT = REPO / ".radixinsight" / "bench" / "collector-profile.raw"  # py-spy raw stacks
BATCH = 10


def make_bodies(n_bodies: int, users: int = 1000) -> list[list[dict]]:
    return [[event(event_id=str(uuid.uuid4()), project_id=PROJECT,
                   user={"user_id": f"u{(b * BATCH + i) % users}", "session_id": "s1"})
             for i in range(BATCH)] for b in range(n_bodies)]


def bare_producer(bootstrap: str, topic: str, bodies: list[list[dict]], seconds: float,
                  warm_up_s: float = 3.0) -> dict:
    """Send what the collector would send for ``bodies``, in a plain loop, then flush."""
    import orjson
    from kafka import KafkaProducer

    head = envelope_head(project_id=PROJECT, key_id="k1", ip="127.0.0.1", user_agent=None)
    records = [(f"{PROJECT}:{who(e)}".encode(), wrap(head, orjson.dumps(e), None))
               for body in bodies for e in body]
    producer = KafkaProducer(bootstrap_servers=bootstrap, **producer_settings())
    producer.send(topic, key=b"warm", value=b"up").get(30)

    def loop(seconds: float) -> int:
        sent, n = 0, len(records)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for i in range(sent, sent + 1000):
                key, value = records[i % n]
                producer.send(topic, key=key, value=value)
            sent += 1000
        producer.flush()
        return sent

    loop(warm_up_s)
    started, cpu_started = time.perf_counter(), time.process_time()
    sent = loop(seconds)
    elapsed = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    producer.close()
    return {"events": sent, "events_per_s": round(sent / elapsed),
            "cpu_us_per_event": round(cpu_s * 1e6 / sent, 1)}


def accepted_total(base: str, timeout_s: float = 30) -> float:
    """Events acknowledged so far, read once no request is in flight (a request that
    wrk gave up on at the end of a run may still be waiting for Kafka's ack)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = requests.get(f"{base}/metrics", timeout=10).text
        values = [line.rsplit(" ", 1) for line in text.splitlines()]
        if sum(float(v) for k, v in values if k == "radix_collector_in_flight_requests") == 0 \
                or time.monotonic() > deadline:
            return sum(float(v) for k, v in values
                       if k.startswith("radix_collector_events_accepted_total{"))
        time.sleep(0.05)


TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def machine_cpu_s() -> float:
    """CPU seconds every process on the machine has used (not idle, not I/O wait)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) * TICK_S


def children_cpu_s() -> float:
    """CPU seconds of this process's waited-for children (wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuShare:
    """Cores used per named process (and the whole machine) between start and stop."""

    def __init__(self, pids: dict[str, int], with_self: bool = False) -> None:
        self.pids, self.with_self = pids, with_self

    def __enter__(self) -> CpuShare:
        self.started = time.perf_counter()
        self.before = {name: cpu_s(pid) for name, pid in self.pids.items()}
        self.children, self.machine = children_cpu_s(), machine_cpu_s()
        self.own = time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        elapsed = time.perf_counter() - self.started
        used = {name: cpu_s(pid) - self.before[name] for name, pid in self.pids.items()}
        if self.with_self:
            used["bench (bare loop)"] = time.process_time() - self.own
        wrk = children_cpu_s() - self.children
        if wrk > 0:
            used["wrk"] = wrk
        machine = machine_cpu_s() - self.machine
        used["other"] = max(0.0, machine - sum(used.values()))
        self.cores = {name: round(v / elapsed, 2) for name, v in used.items()}
        self.cores["machine"] = round(machine / elapsed, 2)


def run_wrk(base: str, bodies_file: Path, connections: int, seconds: float,
            delay_ms: float = 0) -> dict:
    env = {**os.environ, "BENCH_DELAY_MS": f"{delay_ms:.3f}"}
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds:.0f}s", "--timeout", "10s",
           "-s", str(REPO / "bench" / "collector_load.lua"), base, "--", str(bodies_file), KEY]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    stats["requests_per_s"] = stats["requests"] / (stats["duration_us"] / 1e6)
    return stats


def worker_pids(supervisor: int) -> list[int]:
    """uvicorn's worker processes (not multiprocessing's resource tracker)."""
    kids = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(k) for k in kids
            if b"resource_tracker" not in Path(f"/proc/{k}/cmdline").read_bytes()] or [supervisor]


AREAS = (("kafka-python I/O thread", "kafka-python-producer"), ("kafka-python send()", "kafka/"),
         ("collector code", "collector/"), ("uvicorn + httptools", "uvicorn/"),
         ("prometheus_client", "prometheus_client/"), ("asyncio / uvloop", "asyncio/"))


def summarize_profile(raw: Path, top: int = 12) -> dict:
    """Shares of py-spy samples: by area (first matching frame, I/O thread first) and the
    functions with the most samples of their own."""
    areas: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        own[frames[-1].split(" (")[0] + " " + frames[-1].rsplit("/", 1)[-1].rstrip(")")] += n
        if "select (selectors.py" in frames[-1]:
            area = "idle: I/O thread waiting in select()"  # GIL released, no CPU
        else:
            area = next((name for name, mark in AREAS if mark in (
                frames[0] if mark.startswith("kafka-python-producer") else stack)), "other")
        areas[area] += n
    pct = lambda n: round(100 * n / max(total, 1), 1)  # noqa: E731
    return {"samples": total, "by_area_pct": {k: pct(v) for k, v in areas.most_common()},
            "top_own_pct": {k: pct(v) for k, v in own.most_common(top)}}


def profile_worker(base: str, bodies_file: Path, pid: int, connections: int, seconds: float,
                   out: Path) -> dict:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.parent.mkdir(parents=True, exist_ok=True)
    rec = subprocess.Popen([spy, "record", "--pid", str(pid), "--threads", "--nonblocking",
                            "--format", "raw", "-r", "200", "-d", f"{seconds:.0f}", "-o", str(out)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_wrk(base, bodies_file, connections, seconds)
    rec.wait(timeout=60)
    return summarize_profile(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--profile", action="store_true", help="py-spy one worker under load")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk (make setup does)")
    out: dict = {"bench": "collector", "cpus": os.cpu_count(), "workers": args.workers,
                 "connections": args.connections, "batch": BATCH,
                 "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        work = Path(tmp)
        bodies = make_bodies(200)
        bodies_file = work / "bodies.jsonl"
        bodies_file.write_text("".join(json.dumps(b, separators=(",", ":")) + "\n"
                                       for b in bodies))
        out["event_bytes"] = round(bodies_file.stat().st_size / (len(bodies) * BATCH))
        broker = KafkaBroker(work / "kafka", heap="1g")
        collector_pid = None
        try:
            broker.start(timeout_s=120)
            topic = f"{PREFIX}.events.raw"
            create_topics(broker.bootstrap, [topic, "bare.events.raw"], args.partitions)
            broker_pid = broker.pid
            assert broker_pid is not None
            with CpuShare({"broker": broker_pid}, with_self=True) as bare_cpu:
                out["bare"] = bare_producer(broker.bootstrap, "bare.events.raw", bodies,
                                            args.seconds)
            out["cpu"] = {"bare": bare_cpu.cores}

            no_limits = {"project_per_s": 0, "user_per_s": 0}  # measure the path, not 429s
            Registry({PROJECT: Project(PROJECT, (WriteKey("k1", hash_key(KEY)),),
                                       rate_limits=no_limits)}).save(work / "projects.json")
            port = procs.free_port()
            env = {"RADIX_KAFKA_BOOTSTRAP": broker.bootstrap, "RADIX_TOPIC_PREFIX": PREFIX,
                   "RADIX_PROJECTS": str(work / "projects.json"), "PYTHONPATH": str(REPO)}
            collector_pid = procs.spawn(
                [sys.executable, "-m", "radixinsight.cli", "collector", "serve", "--port",
                 str(port), "--workers", str(args.workers)],
                pid_file=work / "collector.pid", log_file=work / "collector.log", env=env)
            base = f"http://127.0.0.1:{port}"
            from tests.fixtures.collector import wait_ready

            wait_ready(base, timeout_s=60)
            run_wrk(base, bodies_file, args.connections, 3)  # warm-up: connections, JIT-free
            workers = worker_pids(collector_pid)
            before = accepted_total(base)
            with CpuShare({**{f"worker {i + 1}": pid for i, pid in enumerate(workers)},
                           "broker": broker_pid}) as max_cpu:
                peak = run_wrk(base, bodies_file, args.connections, args.seconds)
            accepted = accepted_total(base) - before
            peak["events_per_s"] = round(accepted / (peak["duration_us"] / 1e6))
            worker_cores = sum(v for k, v in max_cpu.cores.items() if k.startswith("worker"))
            peak["cpu_us_per_event"] = round(worker_cores * 1e6 / max(peak["events_per_s"], 1), 1)
            out["max"] = peak
            out["cpu"]["max"] = max_cpu.cores

            target = peak["requests_per_s"] / 2
            delay = max(0.0, args.connections / target * 1000 - peak["p50_ms"])
            calib = run_wrk(base, bodies_file, args.connections, 5, delay)
            # Each connection cycles every delay + latency: move the delay by the gap
            # between the cycle we want and the cycle we measured.
            delay = max(0.0, delay + args.connections * 1000 * (
                1 / target - 1 / calib["requests_per_s"]))
            half = run_wrk(base, bodies_file, args.connections, args.seconds, delay)
            half["target_requests_per_s"] = round(target)
            out["half"] = half
            if args.profile:
                out["profile"] = profile_worker(base, bodies_file, workers[0],
                                                args.connections, min(args.seconds, 15),
                                                PROFILE_OUT)
            total_accepted = accepted_total(base)
            out["kafka_check"] = check_topic(broker.bootstrap, topic, total_accepted)
        finally:
            if collector_pid:
                procs.stop_pid(collector_pid)
            broker.stop()
    out["ratio_vs_bare"] = round(out["max"]["events_per_s"] / out["bare"]["events_per_s"], 2)
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out))


def check_topic(bootstrap: str, topic: str, accepted: float) -> dict:
    """Every acknowledged event is on the topic, and nothing else is."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    in_kafka = sum(consumer.end_offsets(parts).values())
    consumer.close()
    return {"records": in_kafka, "acknowledged": int(accepted), "equal": in_kafka == accepted}


if __name__ == "__main__":
    main()
