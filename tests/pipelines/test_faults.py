"""Faults on the real stack: the store ends up with exactly the events sent.

One broker, one store server and one streaming job (Prism) of this test's own, so
they can be killed and restarted: the job with kill -9 while events flow, the store
stopped for a while, the broker restarted. Afterwards every accepted event is stored
once: count (FINAL), distinct event_id, and count after merging all equal the sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest
import requests

from collector.app import CollectorConfig
from radixinsight import procs
from radixinsight.demo import user_journeys
from radixinsight.services.kafka_broker import KafkaBroker
from radixinsight.store import connect
from radixinsight.store.migrate import migrate
from tests.fixtures.collector import running_collector
from tests.pipelines.test_streaming_e2e import (
    KEY,
    count,
    run_stream_job,
    stream_setup,
    wait_count,
)

REPO = Path(__file__).resolve().parents[2]


class ServedStore:
    """``radixinsight store serve`` on a fixed port, so it can stop and come back."""

    def __init__(self, path: Path) -> None:
        self.path, self.port = path, procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.path.parent / "store.log", "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "radixinsight.store.server", "--path", str(self.path),
             "--port", str(self.port)], stdout=log, stderr=log, cwd=REPO)
        deadline = time.monotonic() + 60
        while not procs.port_open(self.port):
            assert self.proc.poll() is None and time.monotonic() < deadline, "store did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop_pid(self.proc.pid)
            self.proc.wait(timeout=30)
            self.proc = None


def send_all(url: str, events: list[dict], batch: int = 20, pause_s: float = 0.0,
             retry_for_s: float = 120.0) -> int:
    """POST every event; a 503 (broker down) is retried with the same events, as SDKs do."""
    http, accepted = requests.Session(), 0
    for i in range(0, len(events), batch):
        chunk, deadline = events[i:i + batch], time.monotonic() + retry_for_s
        while True:
            try:
                resp = http.post(url, data=orjson.dumps(chunk), timeout=30,
                                 headers={"X-API-Key": KEY,
                                          "Content-Type": "application/json"})
            except requests.ConnectionError:
                resp = None
            if resp is not None and resp.status_code == 202:
                accepted += resp.json()["accepted"]
                break
            assert resp is None or resp.status_code in (429, 503), resp.text
            assert time.monotonic() < deadline, "collector kept refusing"
            time.sleep(1)
        time.sleep(pause_s)
    return accepted


def kafka_progress(bootstrap: str, prefix: str) -> dict[str, object]:
    """End offsets and the streaming group's committed offsets, to tell a lost record
    (committed past it) from a slow one (not yet committed)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id="radixinsight-streaming")
    try:
        topic = f"{prefix}.events.raw"
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        return {"end": {tp.partition: o for tp, o in consumer.end_offsets(parts).items()},
                "committed": {tp.partition: consumer.committed(tp) for tp in parts}}
    finally:
        consumer.close()


@pytest.mark.e2e
def test_kill9_store_outage_and_broker_restart_lose_and_duplicate_nothing(tmp_path):
    broker = KafkaBroker(tmp_path / "kafka")
    store = ServedStore(tmp_path / "store")
    job = None
    try:
        broker.start(timeout_s=90)
        store.start()
        migrate(connect(store.url))
        prefix, reg = stream_setup(broker.bootstrap, tmp_path, "f")
        log = tmp_path / "pipeline.log"

        def start_job():
            return run_stream_job("prism", broker.bootstrap, store.url, prefix, log,
                                  tmp_path / "projects.json")

        events = list(user_journeys("demo", 400, uuid.uuid4().hex[:8]))
        a, b, c, d = (events[i::4] for i in range(4))
        client = connect(store.url)
        job = start_job()
        cfg = CollectorConfig(broker.bootstrap, reg, topic_prefix=prefix)
        with running_collector(cfg) as url:
            # 1. kill -9 the job while events flow, then start it again
            assert send_all(url, a) == len(a)
            assert wait_count(client, "SELECT count() FROM events FINAL", 1, 240) > 0, \
                procs.log_tail(log)
            sender = threading.Thread(target=send_all, args=(url, b),
                                      kwargs={"pause_s": 0.1})
            sender.start()
            time.sleep(2)
            os.killpg(job.pid, signal.SIGKILL)  # the job and its Prism
            job.wait(timeout=30)
            sender.join()
            job = start_job()
            # 2. the store goes away for a while; the sink retries until it is back
            store.stop()
            assert send_all(url, c) == len(c)
            time.sleep(8)
            store.start()
            # 3. the broker restarts; the collector answers 503 meanwhile, producers retry
            broker.stop()
            time.sleep(2)
            broker.start(timeout_s=90)
            assert send_all(url, d) == len(d)
        total = len(events)
        stored = wait_count(client, "SELECT count() FROM events FINAL", total, 300)
        assert stored == total, (kafka_progress(broker.bootstrap, prefix), procs.log_tail(log))
        assert count(client, "SELECT uniqExact(event_id) FROM events") == total
        client.command("OPTIMIZE TABLE events FINAL")
        assert count(client, "SELECT count() FROM events") == total
        assert job.poll() is None, "the restarted job must still be running"
    finally:
        if job is not None:
            procs.stop_pid(job.pid)
        store.stop()
        broker.stop()
