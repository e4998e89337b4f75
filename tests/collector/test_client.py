"""The Python producer client against a real collector and broker."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest
import requests

from collector.app import CollectorConfig
from collector.client import Client, backoff_s, retry_after_s
from collector.projects import Project, Registry, WriteKey, hash_key
from radixinsight.procs import free_port
from tests.fixtures.collector import KEY, read_topic, running_collector, write_registry

REPO = Path(__file__).resolve().parents[2]


def test_retry_after_parsing_and_backoff_floor():
    assert retry_after_s("3") == 3.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert backoff_s(10, 0.5, 30, None) <= 30
    assert backoff_s(0, 0.5, 30, 4.0) == 4.0  # never sooner than the server asked


def stored(bootstrap: str, topic: str) -> list[dict]:
    return [orjson.loads(r.value)["event"] for r in read_topic(bootstrap, topic)]


@pytest.mark.integration
def test_track_batches_in_the_background_and_close_flushes(kafka_broker, tmp_path):
    prefix = f"client{free_port()}"
    cfg = CollectorConfig(kafka_broker.bootstrap,
                          Registry.load(write_registry(tmp_path / "p.json")), topic_prefix=prefix)
    with running_collector(cfg) as url:
        client = Client(url, KEY, "p1", batch_size=20, flush_interval_s=0.2)
        ids = [client.track("signup", f"u{i}", {"i": i}) for i in range(50)]
        client.close()
        metrics = requests.get(url.removesuffix("/collect") + "/metrics", timeout=10).text
    assert (client.sent, client.failed) == (50, 0)
    events = stored(kafka_broker.bootstrap, f"{prefix}.events.raw")
    assert sorted(e["event_id"] for e in events) == sorted(ids)
    assert {e["project_id"] for e in events} == {"p1"}
    requests_202 = next(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                        if line.startswith('radix_collector_requests_total{endpoint="/collect",'
                                           'status="202"}'))
    assert requests_202 <= 5  # batched: 50 events in a few requests


@pytest.mark.integration
def test_retries_honour_retry_after_and_keep_event_ids(kafka_broker, tmp_path):
    prefix = f"client{free_port()}"
    reg = Registry({"p1": Project("p1", (WriteKey("k1", hash_key(KEY)),),
                                  rate_limits={"user_per_s": 2, "user_burst": 2})})
    cfg = CollectorConfig(kafka_broker.bootstrap, reg, topic_prefix=prefix)
    with running_collector(cfg) as url:
        client = Client(url, KEY, "p1", batch_size=2, flush_interval_s=0.05)
        started = time.monotonic()
        ids = [client.track("tick", "same-user") for _ in range(4)]
        client.close()
        took = time.monotonic() - started
    assert (client.sent, client.failed) == (4, 0)
    assert took >= 1.0  # the second batch waited for Retry-After
    events = stored(kafka_broker.bootstrap, f"{prefix}.events.raw")
    assert sorted(e["event_id"] for e in events) == sorted(ids)  # once each, same ids


@pytest.mark.integration
def test_refused_batches_are_reported_not_retried(kafka_broker, tmp_path):
    cfg = CollectorConfig(kafka_broker.bootstrap,
                          Registry.load(write_registry(tmp_path / "p.json")))
    failures = []
    with running_collector(cfg) as url:
        client = Client(url, "not-a-key", "p1", on_error=lambda b, why: failures.append(
            (len(b), why)))
        client.track("x", "u1")
        client.close()
    assert client.failed == 1 and failures and failures[0][1].startswith("403")


@pytest.mark.integration
def test_events_are_flushed_when_the_program_exits(kafka_broker, tmp_path):
    prefix = f"client{free_port()}"
    cfg = CollectorConfig(kafka_broker.bootstrap,
                          Registry.load(write_registry(tmp_path / "p.json")), topic_prefix=prefix)
    with running_collector(cfg) as url:
        script = textwrap.dedent(f"""
            from collector.client import Client
            client = Client({url!r}, {KEY!r}, "p1", flush_interval_s=60)
            for i in range(30):
                client.track("exit_test", f"u{{i}}")
            # no close(): the atexit hook must send them
        """)
        subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=60)
    events = stored(kafka_broker.bootstrap, f"{prefix}.events.raw")
    assert len(events) == 30 and {e["event_name"] for e in events} == {"exit_test"}
