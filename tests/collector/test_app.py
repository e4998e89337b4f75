"""The collector's HTTP contract against a real broker: every status code, CORS, beacons,
gzip, key rotation, trusted proxies, and what lands in Kafka."""

from __future__ import annotations

import gzip
import json
import textwrap

import orjson
import pytest
import requests

from collector.app import OPENAPI_PATH, CollectorConfig
from collector.client_ip import parse_networks
from collector.config import Limits
from collector.projects import Registry, ReloadingRegistry
from radixinsight.procs import free_port
from tests.fixtures.collector import (
    KEY,
    WEB_KEY,
    WEB_ORIGIN,
    envelopes_by_event_id,
    ev,
    post,
    read_topic,
    running_collector,
    write_registry,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(kafka_broker, tmp_path_factory):
    """One collector for the module: (collect URL, registry path, topic)."""
    path = write_registry(tmp_path_factory.mktemp("reg") / "projects.json")
    prefix = f"app{free_port()}"
    cfg = CollectorConfig(kafka_broker.bootstrap, ReloadingRegistry(path, check_every_s=0),
                          topic_prefix=prefix, trusted_proxies=parse_networks("127.0.0.1"),
                          limits=Limits(max_body_bytes=256 * 1024, max_batch_bytes=512 * 1024))
    with running_collector(cfg) as url:
        yield url, path, f"{prefix}.events.raw"


@pytest.fixture
def url(served):
    return served[0]


def test_batch_is_acknowledged_and_every_event_is_in_kafka_once(kafka_broker, served):
    url, _, topic = served
    events = [ev(user={"anonymous_id": f"a{i}"}, sent_at="2026-11-25T10:00:01Z")
              for i in range(20)]
    resp = post(url, events, **{"User-Agent": "pytest-ua"})
    assert (resp.status_code, resp.json()) == (202, {"accepted": 20})
    found = envelopes_by_event_id(read_topic(kafka_broker.bootstrap, topic))
    mine = {e["event_id"]: found.get(e["event_id"], []) for e in events}
    assert all(len(copies) == 1 for copies in mine.values())
    env = mine[events[0]["event_id"]][0]
    assert env["event"] == events[0]  # untouched
    assert (env["project_id"], env["key_id"], env["user_agent"], env["ip"], env["sent_at"]) == (
        "p1", "k1", "pytest-ua", "127.0.0.1", "2026-11-25T10:00:01Z")
    assert env["received_at"].endswith("+00:00") and env["v"] == 1
    keys = {r.key.decode() for r in read_topic(kafka_broker.bootstrap, topic)
            if orjson.loads(r.value)["event"]["event_id"] in mine}
    assert keys == {f"p1:a{i}" for i in range(20)}


def test_single_object_body_is_one_event(url):
    assert post(url, ev()).json() == {"accepted": 1}


def test_gzip_body(url):
    body = gzip.compress(orjson.dumps([ev(), ev()]))
    resp = post(url, body, **{"Content-Encoding": "gzip"})
    assert (resp.status_code, resp.json()) == (202, {"accepted": 2})


def test_beacon_text_plain_with_key_in_query(url):
    # navigator.sendBeacon(url + "?api_key=…", JSON.stringify(events)): text/plain, no headers
    resp = requests.post(f"{url}?api_key={WEB_KEY}", data=orjson.dumps([ev(project_id="web")]),
                         headers={"Content-Type": "text/plain;charset=UTF-8",
                                  "Origin": WEB_ORIGIN}, timeout=30)
    assert resp.status_code == 202
    assert resp.headers["Access-Control-Allow-Origin"] == WEB_ORIGIN


def test_keyless_browser_ingestion_from_an_allowed_origin(kafka_broker, served):
    url, _, topic = served
    event = ev(project_id="web", user={"anonymous_id": "anon-1"})
    resp = post(url, [event], key=None, Origin=WEB_ORIGIN)
    assert resp.status_code == 202
    assert resp.headers["Access-Control-Allow-Origin"] == WEB_ORIGIN
    assert "Retry-After" in resp.headers["Access-Control-Expose-Headers"]
    env = envelopes_by_event_id(read_topic(kafka_broker.bootstrap, topic))[event["event_id"]][0]
    assert env["key_id"] is None and env["project_id"] == "web"


def test_design_server_side_example_works_as_written(kafka_broker, served):
    """DESIGN.md 3.2, verbatim but for the collector's address."""
    url, _, topic = served
    source = textwrap.dedent('''
        import requests
        import uuid
        import time
        import json

        def track_event(event_name, user_id, properties=None):
            event = {
                "event_id": str(uuid.uuid4()),
                "event_name": event_name,
                "project_id": "backend-service",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "user": {
                    "user_id": user_id
                },
                "properties": properties or {}
            }

            response = requests.post(
                "https://api.radixinsight.company.com/collect",
                headers={"Content-Type": "application/json", "X-API-Key": "server-key-123"},
                data=json.dumps([event])
            )

            return response.status_code == 202
        ''').replace("https://api.radixinsight.company.com/collect", url)
    scope: dict = {}
    exec(compile(source, "design_example", "exec"), scope)
    assert scope["track_event"]("order_shipped", "user-42", {"order_id": 7}) is True
    shipped = [orjson.loads(r.value) for r in read_topic(kafka_broker.bootstrap, topic)
               if orjson.loads(r.value)["event"].get("event_name") == "order_shipped"]
    assert [(e["project_id"], e["key_id"], e["event"]["user"]) for e in shipped] == [
        ("backend-service", "s1", {"user_id": "user-42"})]


@pytest.mark.parametrize("body, key, headers, status", [
    ([ev()], None, {}, 401),  # no key, not a browser
    ([ev(project_id="p1")], None, {"Origin": WEB_ORIGIN}, 401),  # p1 is not keyless
    ([ev()], "wrong-key", {}, 403),
    ([ev(project_id="p2")], KEY, {}, 403),  # a key writes only its own project
    ([ev(project_id="web")], WEB_KEY, {"Origin": "https://evil.example"}, 403),
    ([ev(project_id="web")], None, {"Origin": "https://evil.example"}, 403),
    (b"{nope", KEY, {}, 400),
    (b'"a string"', KEY, {}, 400),
    ([1, 2], KEY, {}, 400),
    ([], KEY, {}, 400),
    (b'[{"s": "\xff"}]', KEY, {}, 400),  # not UTF-8
    (b"\x1f\x8b\x08 not really gzip", KEY, {"Content-Encoding": "gzip"}, 400),
    ([ev(x="y" * 110_000)], KEY, {}, 413),  # one event over 100 KB
    ([ev()] * 501, KEY, {}, 413),  # batch over 500 events
    (b"[" + b" " * 300_000 + b"]", KEY, {}, 413),  # body over the limit
    (gzip.compress(b"[" + b" " * 5_000_000 + b"]"), KEY, {"Content-Encoding": "gzip"}, 413),
    ([ev()], KEY, {"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ([ev()], KEY, {"Content-Type": "text/plain; charset=iso-8859-1"}, 415),
    ([ev()], KEY, {"Content-Encoding": "br"}, 415),
])
def test_rejections(url, body, key, headers, status):
    resp = post(url, body, key=key, **headers)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]


def test_unknown_path_and_wrong_method(url):
    base = url.removesuffix("/collect")
    assert requests.get(f"{base}/nope", timeout=10).status_code == 404
    resp = requests.get(url, timeout=10)
    assert resp.status_code == 405 and "POST" in resp.headers["Allow"]


def test_rate_limit_answers_429_with_retry_after_and_accepts_nothing(url):
    events = [ev(project_id="limited", user={"user_id": "busy"}) for _ in range(3)]
    assert post(url, events, key="limited-key").status_code == 202
    resp = post(url, events[:1], key="limited-key")
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) >= 1
    other_user = post(url, [ev(project_id="limited", user={"user_id": "calm"})],
                      key="limited-key")
    assert other_user.status_code == 202  # the limit is per user


def test_cors_preflight_for_allowed_and_other_origins(url):
    ok = requests.options(url, headers={"Origin": WEB_ORIGIN,
                                        "Access-Control-Request-Method": "POST",
                                        "Access-Control-Request-Headers": "content-type"},
                          timeout=10)
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == WEB_ORIGIN
    assert "content-type" in ok.headers["Access-Control-Allow-Headers"].lower()
    assert int(ok.headers["Access-Control-Max-Age"]) >= 600
    bad = requests.options(url, headers={"Origin": "https://evil.example",
                                         "Access-Control-Request-Method": "POST"}, timeout=10)
    assert bad.status_code == 403 and "Access-Control-Allow-Origin" not in bad.headers


def test_errors_to_an_allowed_origin_carry_cors_headers(url):
    resp = post(url, b"{nope", key=WEB_KEY, Origin=WEB_ORIGIN)
    assert resp.status_code == 400
    assert resp.headers["Access-Control-Allow-Origin"] == WEB_ORIGIN


def test_key_rotation_takes_effect_without_restart(served):
    url, path, _ = served
    reg = Registry.load(path)
    new_key, _ = reg.rotate_key("p2")
    reg.save(path)
    assert post(url, [ev(project_id="p2")], key="other-key").status_code == 403
    assert post(url, [ev(project_id="p2")], key=new_key).status_code == 202


def test_forwarded_for_is_believed_only_from_trusted_proxies(kafka_broker, served, tmp_path):
    url, _, topic = served
    via_proxy = ev()
    post(url, [via_proxy], **{"X-Forwarded-For": "1.1.1.1, 198.51.100.7"})
    path = write_registry(tmp_path / "projects.json")
    prefix = f"untrusted{free_port()}"
    cfg = CollectorConfig(kafka_broker.bootstrap, Registry.load(path), topic_prefix=prefix,
                          trusted_proxies=parse_networks("10.0.0.0/8"))
    direct = ev()
    with running_collector(cfg) as other:
        assert post(other, [direct], **{"X-Forwarded-For": "198.51.100.7"}).status_code == 202
    ip_of = lambda t, e: envelopes_by_event_id(  # noqa: E731
        read_topic(kafka_broker.bootstrap, t))[e["event_id"]][0]["ip"]
    assert ip_of(topic, via_proxy) == "198.51.100.7"  # through the trusted 127.0.0.1
    assert ip_of(f"{prefix}.events.raw", direct) == "127.0.0.1"  # spoofing ignored


def test_health_ready_metrics_openapi(url):
    base = url.removesuffix("/collect")
    assert requests.get(f"{base}/health", timeout=10).json() == {"status": "ok"}
    assert requests.get(f"{base}/ready", timeout=10).json() == {"status": "ready"}
    post(url, [ev()])
    post(url, [ev(project_id="p2")])
    text = requests.get(f"{base}/metrics", timeout=10).text
    for needle in ('radix_collector_requests_total{endpoint="/collect",status="202"}',
                   'radix_collector_events_accepted_total{project="p1"}',
                   'radix_collector_events_rejected_total{reason="forbidden"}',
                   "radix_collector_kafka_produce_seconds_bucket",
                   "radix_collector_in_flight_requests",
                   "radix_collector_kafka_in_flight_events"):
        assert needle in text
    doc = requests.get(f"{base}/openapi.json", timeout=10).json()
    assert doc == json.loads(OPENAPI_PATH.read_text())
    assert set(doc["paths"]) == {"/collect", "/health", "/ready", "/metrics", "/openapi.json"}


def test_dead_broker_answers_503_with_retry_after_and_not_ready(tmp_path):
    cfg = CollectorConfig(f"127.0.0.1:{free_port()}",
                          Registry.load(write_registry(tmp_path / "p.json")))
    with running_collector(cfg, ready=False) as url:
        resp = post(url, [ev()])
        ready = requests.get(url.removesuffix("/collect") + "/ready", timeout=10)
    assert resp.status_code == 503 and int(resp.headers["Retry-After"]) >= 1
    assert ready.status_code == 503 and ready.json()["problems"]
