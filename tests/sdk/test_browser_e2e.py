"""The JS SDK end to end: real Chromium -> the real collector -> a real Kafka broker.

A test-only ASGI app serves the page (the published loader snippet), the built IIFE and,
on the same origin, ``POST /collect`` by the real collector app: the collector on this
branch has no CORS yet, and the page passes ``apiKey``. ``sdk-js/e2e/browser.mjs`` drives
Chromium through four scenarios and reports what it saw; these tests check what reached Kafka.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from collector.app import CollectorConfig, create_app
from collector.projects import Registry
from tests.fixtures.collector import serving

pytestmark = pytest.mark.e2e

SDK = Path(__file__).resolve().parents[2] / "sdk-js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PROJECT = "internal-crm"  # the design example's project
KEY = "rk_browser_e2e"
TOTAL = 2 + 15 + 10 + 4  # events of the four scenarios
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def page_html() -> str:
    """The published loader snippet, its init taking options from the page's query string."""
    snippet = (SDK / "snippet.html").read_text()
    script = re.search(r"<script>(.*?)</script>", snippet, re.S)
    assert script, "snippet.html has no <script>"
    init = ("RadixInsight.init(Object.assign({endpoint: location.origin + '/collect'}, "
            "JSON.parse(new URLSearchParams(location.search).get('opts'))));")
    body = re.sub(r"RadixInsight\.init\(.*?\);", init, script.group(1))
    return f"<!doctype html><title>Lead capture</title><script>{body}</script><p>e2e</p>"


def site(collector: ASGIApp, dist: Path, log: list[dict[str, Any]]) -> ASGIApp:
    """Page, SDK and collector on one origin; ``/log`` lists how each /collect request came."""
    page = page_html()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan: the collector's producer
            return await collector(scope, receive, send)
        path = scope["path"]
        if path == "/collect":
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            log.append({"query": scope["query_string"].decode(),
                        "content_type": headers.get("content-type", ""),
                        "key_header": "x-api-key" in headers})
            return await collector(scope, receive, send)
        routes = {
            "/": lambda: HTMLResponse(page),
            "/empty": lambda: HTMLResponse("<!doctype html><title>elsewhere</title>"),
            "/radixinsight.min.js": lambda: FileResponse(dist / "radixinsight.min.js",
                                                         media_type="text/javascript"),
            "/log": lambda: JSONResponse(log),
        }
        response = routes.get(path, lambda: PlainTextResponse("not found", 404))()
        await response(scope, receive, send)

    return app


@dataclass(frozen=True)
class Run:
    seen: dict[str, Any]  # what the browser driver reports
    events: list[dict[str, Any]]  # Kafka envelopes
    requests: list[dict[str, Any]]  # how /collect was called


def consume(bootstrap: str, topic: str, at_least: int) -> list[dict[str, Any]]:
    """Every record on ``topic``: reads until ``at_least`` and then 5 s of silence."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000)
    records = [orjson.loads(r.value) for r in consumer]
    while len(records) < at_least and (more := [orjson.loads(r.value) for r in consumer]):
        records += more
    consumer.close()
    return records


@pytest.fixture(scope="module")
def dist() -> Path:
    if not (SDK / "node_modules" / "playwright-core").is_dir():
        pytest.fail("sdk-js has no node_modules: run `make sdk-test` (npm ci) first")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make chromium`")
    subprocess.run(["node", "scripts/build.mjs"], cwd=SDK, check=True, timeout=120)
    return SDK / "dist"


@pytest.fixture(scope="module")
def run(kafka_broker: Any, dist: Path) -> Iterator[Run]:
    prefix = f"sdk{uuid.uuid4().hex[:8]}"
    registry = Registry({})
    registry.add_key(PROJECT, KEY, key_id="browser")
    cfg = CollectorConfig(kafka_broker.bootstrap, registry, topic_prefix=prefix)
    log: list[dict[str, Any]] = []
    with serving(site(create_app(cfg), dist, log)) as base:
        args = json.dumps({"base": base, "sdk": {"projectId": PROJECT, "apiKey": KEY}})
        proc = subprocess.run(["node", "e2e/browser.mjs", args], cwd=SDK, capture_output=True,
                              text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    yield Run(seen, consume(kafka_broker.bootstrap, f"{prefix}.events.raw", TOTAL), log)


def named(run: Run, *names: str) -> list[dict[str, Any]]:
    return [env for env in run.events if env["event"]["event_name"] in names]


def test_design_example_arrives_in_kafka_with_the_schema_fields(run: Run) -> None:
    seen = run.seen["design"]
    identify, click = (env["event"] for env in named(run, "identify", "button_click"))
    assert identify["event_name"] == "identify" and click["event_name"] == "button_click"
    assert identify["properties"] == {"email": "user@company.com", "department": "Sales",
                                      "role": "Manager"}
    assert click["properties"] == {"button_id": "submit-form", "form_id": "lead-capture",
                                   "page_section": "hero"}
    for event in (identify, click):
        assert UUID4.match(event["event_id"])
        assert event["project_id"] == PROJECT
        assert event["timestamp"].endswith("Z") and event["sent_at"] >= event["timestamp"]
        assert event["user"]["user_id"] == "user-123"  # identify links it to the anonymous id
        assert UUID4.match(event["user"]["anonymous_id"])
        assert UUID4.match(event["user"]["session_id"])
        ctx = event["context"]
        assert ctx["page"] == {"url": seen["url"], "referrer": "", "title": "Lead capture"}
        assert ctx["user_agent"] == seen["user_agent"] and "Chrome/" in ctx["user_agent"]
        assert (ctx["locale"], ctx["timezone"], ctx["screen"]) == (
            seen["locale"], seen["timezone"], seen["screen"])
    assert identify["user"] == click["user"]
    envelope = named(run, "button_click")[0]
    assert envelope["project_id"] == PROJECT and envelope["key_id"] == "browser"
    assert envelope["user_agent"] == seen["user_agent"] and envelope["ip"] == "127.0.0.1"
    assert envelope["sent_at"] == click["sent_at"]


def test_offline_then_reload_then_online_delivers_every_event_exactly_once(run: Run) -> None:
    seen = run.seen["offline"]
    events = [env["event"] for env in named(run, "offline_event")]
    assert sorted(e["properties"]["seq"] for e in events) == list(range(15))
    ids = Counter(e["event_id"] for e in events)
    assert max(ids.values()) == 1, f"duplicates: {[i for i, n in ids.items() if n > 1]}"
    # The ids of the failed attempts, and of the stored queue, are the ids that arrived.
    assert seen["aborts"] >= 2
    assert set(seen["attempted"]) == set(ids) == set(seen["stored"])
    assert len({e["user"]["anonymous_id"] for e in events}) == 1  # same browser across the reload
    assert seen["accepted"] == 15  # 202s in this browser: exactly its 15 events


def test_closed_tab_queue_is_sent_once_by_the_open_tab(run: Run) -> None:
    events = [env["event"] for env in named(run, "tab_event")]
    assert sorted(e["properties"]["seq"] for e in events) == list(range(10))
    assert len({e["event_id"] for e in events}) == 10
    assert {e["properties"]["tab"] for e in events} == {"first", "second"}
    # Tabs share the anonymous id and the session.
    assert len({(e["user"]["anonymous_id"], e["user"]["session_id"]) for e in events}) == 1
    assert run.seen["tabs"]["accepted"] == 10
    assert run.seen["tabs"]["queues_before_close"] == 2  # one stored queue per tab


def test_page_unload_delivers_the_tail_by_beacon_once(run: Run) -> None:
    events = [env["event"] for env in named(run, "tail_event")]
    assert sorted(e["properties"]["seq"] for e in events) == [0, 1, 2, 3]
    assert len({e["event_id"] for e in events}) == 4
    assert run.seen["beacon"]["accepted_by_fetch"] == 0  # nothing went by fetch, before or after
    beacons = [r for r in run.requests if "api_key=" in r["query"] and not r["key_header"]]
    assert len(beacons) == 1 and beacons[0]["content_type"].startswith("text/plain")


def test_every_event_is_in_kafka_once(run: Run) -> None:
    ids = Counter(env["event"]["event_id"] for env in run.events)
    assert len(ids) == TOTAL and set(ids.values()) == {1}
