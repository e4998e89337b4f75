"""The collector against a real Kafka broker."""

import uuid

import orjson
import pytest
import requests
from kafka import KafkaConsumer

from collector.app import CollectorConfig
from collector.projects import Registry
from radixinsight.procs import free_port
from tests.fixtures.collector import running_collector

pytestmark = pytest.mark.integration
KEY = "test-key-123"


def registry() -> Registry:
    reg = Registry({})
    reg.add_key("p1", KEY, key_id="k1")
    reg.add_key("p2", "other-key", key_id="k2")
    return reg


def ev(**over):
    base = {"event_id": str(uuid.uuid4()), "event_name": "button_click", "project_id": "p1",
            "timestamp": "2026-11-25T10:00:00Z", "user": {"user_id": "u1"}}
    return {**base, **over}


@pytest.fixture
def topic_prefix():
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def collect_url(kafka_broker, topic_prefix):
    cfg = CollectorConfig(kafka_broker.bootstrap, registry(), topic_prefix=topic_prefix)
    with running_collector(cfg) as url:
        yield url


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 20):
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=int(timeout_s * 1000))
    records = []
    for rec in consumer:
        records.append(rec)
        if len(records) >= expected:
            break
    consumer.close()
    return records


def post(url, body, key=KEY, **headers):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    hdrs = {"Content-Type": "application/json", **headers}
    if key is not None:
        hdrs["X-API-Key"] = key
    return requests.post(url, data=data, headers=hdrs, timeout=30)


def test_batch_is_acknowledged_and_every_event_is_in_kafka(kafka_broker, collect_url,
                                                           topic_prefix):
    events = [ev(user={"anonymous_id": f"a{i}"}) for i in range(20)]
    resp = post(collect_url, events, **{"User-Agent": "pytest-ua"})
    assert resp.status_code == 202
    assert resp.json() == {"accepted": 20}
    records = consume_all(kafka_broker.bootstrap, f"{topic_prefix}.events.raw", 20)
    envelopes = [orjson.loads(r.value) for r in records]
    assert sorted(e["event"]["event_id"] for e in envelopes) == sorted(
        e["event_id"] for e in events)
    first = envelopes[0]
    assert first["project_id"] == "p1" and first["key_id"] == "k1"
    assert first["user_agent"] == "pytest-ua" and first["ip"] == "127.0.0.1"
    assert first["received_at"].endswith("+00:00")
    keys = {r.key.decode() for r in records}
    assert keys == {f"p1:a{i}" for i in range(20)}


def test_single_object_body_is_one_event(kafka_broker, collect_url, topic_prefix):
    resp = post(collect_url, ev())
    assert (resp.status_code, resp.json()) == (202, {"accepted": 1})


@pytest.mark.parametrize("body, key, status", [
    ([], None, 401),
    ([], "wrong-key", 403),
    (b"{nope", KEY, 400),
    (b'"a string"', KEY, 400),
    ([1, 2], KEY, 400),
    ([{"project_id": "p2"}], KEY, 403),  # a key writes only its own project
    ([{"x": "y" * 110_000}], KEY, 413),
])
def test_rejections(collect_url, body, key, status):
    resp = post(collect_url, body, key=key)
    assert resp.status_code == status
    assert resp.json()["error"]


def test_broker_down_answers_503_with_retry_after():
    dead = f"127.0.0.1:{free_port()}"
    cfg = CollectorConfig(dead, registry(), producer_options={"request_timeout_ms": 2000})
    with running_collector(cfg) as url:
        resp = post(url, [ev()])
    assert resp.status_code == 503
    assert resp.headers["Retry-After"]
