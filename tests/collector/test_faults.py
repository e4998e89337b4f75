"""Kafka goes away under load and comes back: 503s quickly, no 202 without an ack, recovery
without restarting the collector, and every acknowledged event in Kafka.

Uses a broker of its own (killed and restarted here), not the session's."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field

import orjson
import pytest
import requests

from collector.app import CollectorConfig
from collector.config import KafkaBudget
from collector.projects import Registry
from collector.ratelimit import RateLimits
from radixinsight.services.kafka_broker import KafkaBroker, create_topics
from tests.fixtures.collector import ev, post, read_topic, running_collector, write_registry

pytestmark = pytest.mark.integration
TOPIC_PREFIX = "faults"


@dataclass
class Load:
    """Sender threads posting 5-event batches until stopped; every answer is recorded."""

    url: str
    threads: int = 6
    answers: list[tuple[float, float, int, list[str]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            events = [ev(event_id=str(uuid.uuid4())) for _ in range(5)]
            sent = time.monotonic()
            try:
                status = post(self.url, events, session=session).status_code
            except requests.RequestException:
                status = -1
            self.answers.append((sent, time.monotonic(), status, [e["event_id"] for e in events]))
            if status == 503:
                time.sleep(0.05)  # a client honouring Retry-After would wait longer

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(self.threads)]
        for w in self._workers:
            w.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for w in self._workers:
            w.join(timeout=30)

    def after(self, t: float) -> list[tuple[float, float, int, list[str]]]:
        return [a for a in list(self.answers) if a[1] > t]

    def wait_for(self, status: int, after: float, timeout_s: float) -> float:
        """When the first answer with ``status`` received after ``after`` arrived."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hit = [a[1] for a in self.after(after) if a[2] == status]
            if hit:
                return min(hit)
            time.sleep(0.02)
        raise AssertionError(f"no {status} within {timeout_s}s")


def test_broker_down_then_back_under_load(tmp_path):
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start(timeout_s=120)
    try:
        create_topics(broker.bootstrap, [f"{TOPIC_PREFIX}.events.raw"], partitions=2)
        cfg = CollectorConfig(broker.bootstrap, Registry.load(write_registry(tmp_path / "p.json")),
                              topic_prefix=TOPIC_PREFIX, budget=KafkaBudget(ack_timeout_s=1.0),
                              rate_limits=RateLimits(0, 0, 0, 0))  # 503s only, no 429s
        with running_collector(cfg) as url, Load(url) as load:
            first_ok = load.wait_for(202, after=0, timeout_s=30)
            time.sleep(2)
            os.kill(broker.pid, signal.SIGKILL)
            while broker.is_running():
                time.sleep(0.01)
            killed = time.monotonic()
            first_503 = load.wait_for(503, after=killed, timeout_s=10)
            time.sleep(4)
            down = [a for a in load.after(killed) if a[0] > killed]  # sent while down
            broker.start(timeout_s=120)
            back = time.monotonic()
            recovered = load.wait_for(202, after=back, timeout_s=60)
            time.sleep(1)
        answers = list(load.answers)
        in_kafka = {orjson.loads(r.value)["event"]["event_id"] for r in read_topic(
            broker.bootstrap, f"{TOPIC_PREFIX}.events.raw", timeout_s=10)}
    finally:
        broker.stop()

    assert first_ok < killed
    assert first_503 - killed <= 2.0, f"first 503 {first_503 - killed:.2f}s after the kill"
    assert down and {a[2] for a in down} == {503}  # nothing acknowledged while down
    assert max(a[1] - a[0] for a in down) <= 2.0  # answered promptly, not left hanging
    assert recovered - back <= 60
    assert {a[2] for a in answers} <= {202, 503}
    acked = [i for a in answers if a[2] == 202 for i in a[3]]
    assert len(acked) > 100
    missing = set(acked) - in_kafka
    assert not missing, f"{len(missing)} acknowledged events are not in Kafka"
