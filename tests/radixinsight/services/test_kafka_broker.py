"""The local Kafka broker: real JVM, real client, real files."""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from radixinsight.services.kafka_broker import (
    KafkaBroker,
    KafkaBrokerError,
    create_topics,
    new_cluster_id,
)
from tests.fixtures.kafka import ExternalKafka

pytestmark = pytest.mark.integration


def _topic() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


def _produce(bootstrap: str, topic: str, n: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for i in range(n):
            producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        producer.flush(timeout=30)
    finally:
        producer.close()


def _consume(bootstrap: str, topic: str, n: int, group: str | None = None,
             timeout_s: float = 30) -> list[tuple[bytes, bytes]]:
    """Poll until ``n`` records arrived (bounded by ``timeout_s``); commit them if in a group."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False)
    records: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < n and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500, max_records=n - len(records)).values():
                records.extend((r.key, r.value) for r in batch)
        if group:
            consumer.commit()
    finally:
        consumer.close()
    return records


def _wait_until(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def own_broker(tmp_path: Path):
    """A broker of the test's own, for tests that kill or stop it."""
    if os.environ.get("RADIX_KAFKA_BOOTSTRAP"):
        pytest.skip("RADIX_KAFKA_BOOTSTRAP set: not starting local brokers")
    broker = KafkaBroker(tmp_path / "kafka")
    try:
        yield broker.start()
    finally:
        broker.stop()


def test_cluster_id_is_22_char_base64url() -> None:
    ids = {new_cluster_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) == 22 and set(i) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for i in ids)


def test_produce_consume_round_trip(kafka_broker) -> None:
    topic = _topic()
    assert create_topics(kafka_broker.bootstrap, [topic], partitions=2) == [topic]
    assert create_topics(kafka_broker.bootstrap, [topic], partitions=2) == []  # idempotent
    _produce(kafka_broker.bootstrap, topic, 20)
    got = _consume(kafka_broker.bootstrap, topic, 20)
    assert sorted(got) == sorted((f"k{i}".encode(), f"v{i}".encode()) for i in range(20))


def test_second_start_is_a_noop(kafka_broker) -> None:
    if isinstance(kafka_broker, ExternalKafka):
        pytest.skip("external cluster")
    pid = kafka_broker.pid
    assert kafka_broker.start().pid == pid
    # Another handle on the same dir (say, another process) finds it by pid file and ports.
    other = KafkaBroker(kafka_broker.data_dir).start(timeout_s=10)
    assert (other.pid, other.bootstrap) == (pid, kafka_broker.bootstrap)
    assert other.is_running()


def test_restart_after_kill9_keeps_records_and_offsets(own_broker: KafkaBroker) -> None:
    topic, group = _topic(), "g1"
    bootstrap = own_broker.bootstrap
    _produce(bootstrap, topic, 10)
    assert len(_consume(bootstrap, topic, 4, group=group)) == 4  # commits offset 4

    old_pid = own_broker.pid
    os.kill(old_pid, signal.SIGKILL)
    _wait_until(lambda: not own_broker.is_running(), timeout_s=10)  # SIGKILL is asynchronous

    restarted = KafkaBroker(own_broker.data_dir).start()  # stale pid file and .lock on disk
    assert restarted.bootstrap == bootstrap and restarted.pid != old_pid
    assert len(_consume(bootstrap, topic, 10)) == 10
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    try:
        assert consumer.committed(TopicPartition(topic, 0)) == 4
    finally:
        consumer.close()


def test_stop_leaves_no_process(own_broker: KafkaBroker) -> None:
    pid = own_broker.pid
    port = own_broker.port
    own_broker.stop()
    assert _pid_gone(pid)
    assert not own_broker.pid_file.exists()
    assert not own_broker.is_running()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # the port is released
    own_broker.stop()  # stopping a stopped broker is fine


def test_start_failure_reports_the_broker_log(tmp_path: Path) -> None:
    if os.environ.get("RADIX_KAFKA_BOOTSTRAP"):
        pytest.skip("RADIX_KAFKA_BOOTSTRAP set: not starting local brokers")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = KafkaBroker(tmp_path / "kafka", port=squatter.getsockname()[1])
        with pytest.raises(KafkaBrokerError) as err:
            broker.start(timeout_s=60)
    assert "exited during startup" in str(err.value)
    assert "Address already in use" in str(err.value)
    assert broker.pid is None
