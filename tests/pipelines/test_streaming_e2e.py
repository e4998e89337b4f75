"""Collector -> Kafka -> streaming job (a real runner) -> ClickHouse, counting every event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from collector.app import CollectorConfig
from collector.projects import Registry
from radixinsight import procs
from radixinsight.demo import send, user_journeys
from radixinsight.services.kafka_broker import create_topics
from radixinsight.store import connect
from radixinsight.store.migrate import migrate
from tests.fixtures.collector import running_collector

REPO = Path(__file__).resolve().parents[2]
KEY = "e2e-key"


def count(client, sql: str) -> int:
    return int(client.query(sql).result_rows[0][0])


def wait_count(client, sql: str, target: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    n = count(client, sql)
    while n < target and time.monotonic() < deadline:
        time.sleep(0.5)
        n = count(client, sql)
    return n


@pytest.fixture
def fresh_store(store_server_url):
    database = f"e2e_{uuid.uuid4().hex[:10]}"
    connect(store_server_url).command(f"CREATE DATABASE {database}")
    url = f"{store_server_url}/{database}"
    migrate(connect(url))
    return url


def session_mismatch(client) -> str:
    """For a failed sessions check: the browsers whose events and sessions disagree, with
    every session row stored for them (superseded and deleted ones too)."""
    keys = client.query(
        "SELECT k, ev, se FROM (SELECT anonymous_id AS k, count() AS ev FROM events FINAL "
        "GROUP BY k) AS e LEFT JOIN (SELECT session_key AS k, sum(event_count) AS se "
        "FROM sessions FINAL GROUP BY k) AS s USING k WHERE ev != se").result_rows
    lines = [f"browser {k}: {ev} events, {se} in sessions" for k, ev, se in keys]
    for k, _, _ in keys[:5]:
        lines += [f"  {row}" for row in client.query(
            "SELECT session_id, session_start, session_end, event_count, version, is_deleted "
            "FROM sessions WHERE session_key = {k:String} ORDER BY version",
            parameters={"k": k}).result_rows]
        lines += [f"  event {row}" for row in client.query(
            "SELECT timestamp, received_at FROM events FINAL WHERE anonymous_id = {k:String} "
            "ORDER BY timestamp", parameters={"k": k}).result_rows]
    return "\n".join(lines) + "\n"


def run_stream_job(runner: str, bootstrap: str, store: str, prefix: str, log: Path,
                   projects: Path):
    cmd = [sys.executable, "-m", "radixinsight.cli", "pipeline", "stream", f"--runner={runner}",
           f"--projects={projects}",
           f"--kafka_bootstrap={bootstrap}", f"--store={store}", f"--topic_prefix={prefix}",
           "--count_window_s=5", "--session_gap_s=120", "--watermark_tick_s=2",
           "--session_lateness_s=7200"]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True, env=os.environ.copy())


def journeys(run_id: str, n: int) -> list[dict]:
    """Demo journeys moved 20 min into the past, so their 2-min sessions close at once."""
    out = []
    for ev in list(user_journeys("demo", 100, run_id))[:n]:
        ts = datetime.fromisoformat(ev["timestamp"]) - timedelta(minutes=20)
        out.append({**ev, "timestamp": ts.isoformat()})
    return out


def dead_letters(bootstrap: str, topic: str) -> list[dict]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    try:
        return [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()


def stream_setup(bootstrap: str, tmp_path: Path, name: str) -> tuple[str, Registry]:
    """Fresh raw and DLQ topics (a prefix of their own) and a registry with the demo key."""
    prefix = f"{name}{uuid.uuid4().hex[:8]}"
    create_topics(bootstrap, [f"{prefix}.events.raw", f"{prefix}.events.dlq"], partitions=2)
    reg = Registry({})
    reg.add_key("demo", KEY)
    reg.save(tmp_path / "projects.json")
    return prefix, reg


def check_stream(runner, kafka_broker, fresh_store, tmp_path, events_per_batch=400):
    prefix, reg = stream_setup(kafka_broker.bootstrap, tmp_path, "e2e")
    client = connect(fresh_store)
    log = tmp_path / "pipeline.log"
    job = run_stream_job(runner, kafka_broker.bootstrap, fresh_store, prefix, log,
                         tmp_path / "projects.json")
    try:
        cfg = CollectorConfig(kafka_broker.bootstrap, reg, topic_prefix=prefix)
        with running_collector(cfg) as url:
            first = journeys("r1", events_per_batch)
            assert send(url, KEY, first) == len(first)
            # The job processes while it runs: rows arrive before we send more.
            got = wait_count(client, "SELECT count() FROM events FINAL", len(first), 240)
            assert got == len(first), procs.log_tail(log)
            second = journeys("r2", events_per_batch)
            bad = [{"event_id": "x", "event_name": "e", "project_id": "demo",
                    "timestamp": "2026-01-01T00:00:00Z", "user": {"user_id": "u"}}] * 3
            assert send(url, KEY, second + bad) == len(second) + 3
        total = len(first) + len(second)
        assert wait_count(client, "SELECT count() FROM events FINAL", total, 120) == total
        assert count(client, "SELECT uniqExact(event_id) FROM events") == total
        # validated and enriched on the way: every demo event has these columns filled
        assert count(client, "SELECT count() FROM events FINAL WHERE browser = '' OR "
                             "device_type = '' OR referrer_medium != 'search' OR "
                             "utm_source != 'demo' OR event_type = '' OR timezone = ''") == 0
        assert wait_count(client, "SELECT count() FROM events_invalid", 3, 60) == 3
        # 5 s windows fired while the job ran and account for every event
        windows = wait_count(client, "SELECT sum(events) FROM live_event_counts", total, 60)
        assert windows == total
        assert count(client, "SELECT count() FROM events_invalid "
                             "WHERE failure_type = 'invalid_event_id'") == 3
        # sessions closed while the job ran: every event is in exactly one of them
        assert wait_count(client, "SELECT sum(event_count) FROM sessions FINAL", total,
                          120) == total, session_mismatch(client) + procs.log_tail(log)
        browsers = {e["user"]["anonymous_id"] for e in first + second}
        assert count(client, "SELECT uniqExact(session_key) FROM sessions FINAL") == len(
            browsers)
        identified = {(e["user"]["anonymous_id"], e["user"]["user_id"]) for e in first + second
                      if e["user"]["user_id"]}
        assert count(client, "SELECT count() FROM identities FINAL WHERE status = 'linked'"
                     ) == len(identified)
        # the completeness watermark caught up with the stream (from 80 min behind)
        assert wait_count(client, "SELECT count() FROM completeness "
                                  "WHERE complete_until > now64() - INTERVAL 2 MINUTE", 1, 120) > 0
        assert [b["failure"]["type"] for b in dead_letters(
            kafka_broker.bootstrap, f"{prefix}.events.dlq")] == ["invalid_event_id"] * 3
        assert job.poll() is None, "the streaming job must still be running"
    finally:
        procs.stop_pid(job.pid)
        assert not procs.pid_alive(job.pid)


@pytest.mark.integration
def test_stream_on_prism(kafka_broker, fresh_store, tmp_path):
    check_stream("prism", kafka_broker, fresh_store, tmp_path)


@pytest.mark.integration
@pytest.mark.flink
def test_stream_on_flink(kafka_broker, fresh_store, tmp_path):
    check_stream("flink", kafka_broker, fresh_store, tmp_path)
