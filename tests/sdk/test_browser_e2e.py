"""The JS SDK end to end: real Chromium -> the real collector -> a real Kafka broker, cross-origin.

Two servers on two origins: a static site (``http://localhost:<port>``: the page with the
published loader snippet, the built IIFE) and the real collector (``http://127.0.0.1:<port>``),
so every ``/collect`` request is a real cross-origin (and cross-site) one, checked by the
collector's per-project ``allowed_origins`` and answered with its CORS headers. The projects:

- ``internal-crm``: keyless from the page's origin, so the design's
  ``RadixInsight.init({projectId: 'internal-crm', endpoint, ...})`` runs as written, no key;
- ``crm-keyed``: a write key, not keyless: ``X-API-Key`` on fetch (preflighted), ``?api_key=``
  on the beacon;
- ``crm-limited``: keyless with a tiny per-user rate limit, to answer 429 with ``Retry-After``;
- ``crm-elsewhere``: keyless from another origin only (refused from the page's).

The site also answers on ``http://127.0.0.1:<its port>``, an origin no project allows.

``sdk-js/e2e/browser.mjs`` drives Chromium through the scenarios and reports what it saw; the
collector is wrapped (observation only) to log how each ``/collect`` request came and was
answered; these tests check that log and what reached Kafka.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest
from kafka import KafkaConsumer
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.app import CollectorConfig, create_app
from collector.projects import Project, Registry, WriteKey, hash_key
from tests.fixtures.collector import serving, wait_ready

pytestmark = pytest.mark.e2e

SDK = Path(__file__).resolve().parents[2] / "sdk-js"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PROJECT = "internal-crm"  # the design example's project: keyless
KEYED, KEY = "crm-keyed", "rk_browser_e2e"
LIMITED = "crm-limited"
ELSEWHERE, ELSEWHERE_ORIGIN = "crm-elsewhere", "https://elsewhere.example"  # keyless, not from us
LIMITED_RATE = {"user_per_s": 0.5, "user_burst": 2}  # a 2-event batch empties it for 4 s
TOTAL = 2 + 15 + 10 + 5 + 4 + 4  # events of the scenarios
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def page_html() -> str:
    """The published loader snippet, its init taking options from the page's query string."""
    snippet = (SDK / "snippet.html").read_text()
    script = re.search(r"<script>(.*?)</script>", snippet, re.S)
    assert script, "snippet.html has no <script>"
    init = "RadixInsight.init(JSON.parse(new URLSearchParams(location.search).get('opts')));"
    body = re.sub(r"RadixInsight\.init\(.*?\);", init, script.group(1))
    assert init in body
    return f"<!doctype html><title>Lead capture</title><script>{body}</script><p>e2e</p>"


def site(dist: Path, log: list[dict[str, Any]]) -> ASGIApp:
    """The page's origin: page, SDK, a second page, and ``/log`` (the collector's requests)."""
    page = page_html()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        routes = {
            "/": lambda: HTMLResponse(page),
            "/empty": lambda: HTMLResponse("<!doctype html><title>elsewhere</title>"),
            "/radixinsight.min.js": lambda: FileResponse(dist / "radixinsight.min.js",
                                                         media_type="text/javascript"),
            "/log": lambda: JSONResponse([{k: v for k, v in r.copy().items() if k != "body"}
                                          for r in list(log)]),
        }
        response = routes.get(scope["path"], lambda: PlainTextResponse("not found", 404))()
        await response(scope, receive, send)

    return app


def logged(collector: ASGIApp, log: list[dict[str, Any]]) -> ASGIApp:
    """The collector, unchanged; each ``/collect`` request and its answer appended to ``log``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/collect":
            return await collector(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        entry: dict[str, Any] = {
            "method": scope["method"], "query": parse_qs(scope["query_string"].decode()),
            "content_type": headers.get("content-type", ""), "origin": headers.get("origin"),
            "key_header": headers.get("x-api-key"),
            "request_headers": headers.get("access-control-request-headers", ""),
            "at": time.monotonic(), "body": b""}
        log.append(entry)

        async def receiving() -> Message:
            message = await receive()
            entry["body"] += message.get("body", b"")
            return message

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"], entry["answered"] = message["status"], time.monotonic()
                entry["answer"] = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body" and entry["body"]:
                events = orjson.loads(entry["body"])
                entry["ids"] = [e["event_id"] for e in events]
                entry["projects"] = sorted({e["project_id"] for e in events})
            await send(message)

        await collector(scope, receiving, sending)

    return app


@dataclass(frozen=True)
class Run:
    origin: str  # the page's
    stranger: str  # an origin no project allows
    seen: dict[str, Any]  # what the browser driver reports
    events: list[dict[str, Any]]  # Kafka envelopes
    requests: list[dict[str, Any]]  # how /collect was called and answered


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
    log: list[dict[str, Any]] = []
    with serving(site(dist, log)) as site_base:
        origin = site_base.replace("127.0.0.1", "localhost")  # cross-site, not only cross-port
        registry = Registry({
            PROJECT: Project(PROJECT, allowed_origins=(origin,), allow_keyless=True),
            KEYED: Project(KEYED, (WriteKey("browser", hash_key(KEY)),), allowed_origins=(origin,)),
            LIMITED: Project(LIMITED, allowed_origins=(origin,), allow_keyless=True,
                             rate_limits=LIMITED_RATE),
            ELSEWHERE: Project(ELSEWHERE, allowed_origins=(ELSEWHERE_ORIGIN,), allow_keyless=True)})
        cfg = CollectorConfig(kafka_broker.bootstrap, registry, topic_prefix=prefix)
        with serving(logged(create_app(cfg), log)) as collector_base:
            wait_ready(collector_base)
            args = {"base": origin, "other": site_base, "log": f"{site_base}/log",
                    "endpoint": f"{collector_base}/collect", "key": KEY,
                    "projects": {"design": PROJECT, "keyed": KEYED, "limited": LIMITED,
                                 "elsewhere": ELSEWHERE}}
            proc = subprocess.run(["node", "e2e/browser.mjs", json.dumps(args)], cwd=SDK,
                                  capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    print("browser scenarios, ms:", seen["ms"])
    events = consume(kafka_broker.bootstrap, f"{prefix}.events.raw", TOTAL)
    yield Run(origin, site_base, seen, events, log)


def named(run: Run, *names: str) -> list[dict[str, Any]]:
    return [env for env in run.events if env["event"]["event_name"] in names]


def posts(run: Run, ids: set[str]) -> list[dict[str, Any]]:
    """The POSTs that carried any of ``ids``, in arrival order."""
    return [r for r in run.requests if r["method"] == "POST" and ids & set(r.get("ids", []))]


def test_design_example_runs_as_written_keyless_cross_origin(run: Run) -> None:
    seen = run.seen["design"]
    assert seen["options"] == {"projectId": PROJECT, "endpoint": seen["options"]["endpoint"],
                               "batchSize": 10, "batchInterval": 5000, "debug": False}
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
        assert seen["url"].startswith(run.origin + "/")
        assert ctx["user_agent"] == seen["user_agent"] and "Chrome/" in ctx["user_agent"]
        assert (ctx["locale"], ctx["timezone"], ctx["screen"]) == (
            seen["locale"], seen["timezone"], seen["screen"])
    assert identify["user"] == click["user"]
    for envelope in named(run, "identify", "button_click"):
        assert envelope["project_id"] == PROJECT and envelope["key_id"] is None  # keyless
        assert envelope["user_agent"] == seen["user_agent"] and envelope["ip"] == "127.0.0.1"
        assert envelope["sent_at"] == envelope["event"]["sent_at"]
        assert envelope["received_at"] >= envelope["event"]["timestamp"][:19]
    # One keyless cross-origin fetch, a CORS "simple" request: text/plain, the page's Origin,
    # no key; answered 202 with the headers that let the SDK read the response.
    (sent,) = posts(run, {identify["event_id"], click["event_id"]})
    assert sent["origin"] == run.origin and sent["content_type"].startswith("text/plain")
    assert sent["key_header"] is None and "api_key" not in sent["query"]
    assert sent["status"] == 202 and sent["answer"]["access-control-allow-origin"] == run.origin
    assert sent["answer"]["access-control-expose-headers"] == "Retry-After"


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
    assert {r["origin"] for r in posts(run, set(ids))} == {run.origin}


def test_closed_tab_queue_is_sent_once_by_the_open_tab(run: Run) -> None:
    events = [env["event"] for env in named(run, "tab_event")]
    assert sorted(e["properties"]["seq"] for e in events) == list(range(10))
    assert len({e["event_id"] for e in events}) == 10
    assert {e["properties"]["tab"] for e in events} == {"first", "second"}
    # Tabs share the anonymous id and the session.
    assert len({(e["user"]["anonymous_id"], e["user"]["session_id"]) for e in events}) == 1
    assert run.seen["tabs"]["accepted"] == 10
    assert run.seen["tabs"]["queues_before_close"] == 2  # one stored queue per tab


def beacon_of(run: Run, ids: set[str]) -> dict[str, Any]:
    """The one request that carried ``ids``: a text/plain beacon from the page's origin."""
    (beacon,) = posts(run, ids)
    assert set(beacon["ids"]) == ids
    assert beacon["content_type"].startswith("text/plain") and beacon["origin"] == run.origin
    assert beacon["status"] == 202
    return beacon


def test_page_unload_delivers_the_tail_by_keyless_beacon_once(run: Run) -> None:
    events = [env["event"] for env in named(run, "tail_event")]
    assert sorted(e["properties"]["seq"] for e in events) == [0, 1, 2, 3]
    assert len({e["event_id"] for e in events}) == 4
    assert {e["project_id"] for e in events} == {PROJECT}
    assert run.seen["beacon"]["accepted_by_fetch"] == 0  # nothing went by fetch, before or after
    beacon = beacon_of(run, {e["event_id"] for e in events})
    assert beacon["key_header"] is None and "api_key" not in beacon["query"]


def test_api_key_goes_in_the_header_preflighted_once_and_in_the_beacon_query(run: Run) -> None:
    envelopes = named(run, "keyed_event")
    assert {env["project_id"] for env in envelopes} == {KEYED}
    assert {env["key_id"] for env in envelopes} == {"browser"}
    by_seq = {env["event"]["properties"]["seq"]: env["event"]["event_id"] for env in envelopes}
    assert sorted(by_seq) == [0, 1, 2, 3, 4] and len(set(by_seq.values())) == 5
    fetched = posts(run, {by_seq[0], by_seq[1], by_seq[2]})
    assert [sorted(r["ids"]) for r in fetched] == [sorted([by_seq[0], by_seq[1]]), [by_seq[2]]]
    for r in fetched:
        assert r["key_header"] == KEY and "api_key" not in r["query"] and r["status"] == 202
        assert r["origin"] == run.origin
        assert r["answer"]["access-control-allow-origin"] == run.origin
    # X-API-Key makes the fetch non-simple: one real preflight, then cached (Max-Age) for the
    # second fetch. Keyless fetches and beacons never need one: this is the run's only OPTIONS.
    (preflight,) = [r for r in run.requests if r["method"] == "OPTIONS"]
    assert preflight["origin"] == run.origin and "x-api-key" in preflight["request_headers"]
    assert preflight["status"] == 204 and preflight["at"] < fetched[0]["at"]
    assert preflight["answer"]["access-control-allow-origin"] == run.origin
    assert int(preflight["answer"]["access-control-max-age"]) >= 600
    beacon = beacon_of(run, {by_seq[3], by_seq[4]})
    assert beacon["query"]["api_key"] == [KEY] and beacon["key_header"] is None
    assert run.seen["keyed"]["accepted_by_fetch"] == 3


def test_sdk_reads_retry_after_cross_origin_and_resends_the_same_ids_after_it(run: Run) -> None:
    events = [env["event"] for env in named(run, "limited_event")]
    assert sorted(e["properties"]["seq"] for e in events) == [0, 1, 2, 3]
    ids = Counter(e["event_id"] for e in events)
    assert len(ids) == 4 and set(ids.values()) == {1}
    first, second = {e["event_id"] for e in events if e["properties"]["seq"] < 2}, \
        {e["event_id"] for e in events if e["properties"]["seq"] >= 2}
    tries = posts(run, second)
    assert [r["status"] for r in posts(run, first)] == [202]
    assert [r["status"] for r in tries] == [429, 202], [r["status"] for r in tries]
    limited, resent = tries
    assert set(limited["ids"]) == set(resent["ids"]) == second  # the same event ids
    answer = limited["answer"]
    assert answer["access-control-allow-origin"] == run.origin
    assert answer["access-control-expose-headers"] == "Retry-After"
    wait_s = int(answer["retry-after"])
    # Without the header the SDK's first retry comes after 0.5-1 s: the wait proves it read it.
    assert wait_s >= 2
    assert resent["at"] - limited["answered"] >= wait_s - 0.05
    assert run.seen["limited"]["statuses"] == [202, 429, 202]  # as the browser saw them


def test_origins_a_project_does_not_allow_are_refused(run: Run) -> None:
    seen = run.seen["foreign"]
    assert not named(run, "stranger_event", "elsewhere_event") and seen["accepted"] == 0
    # No project allows the stranger origin: 403 without CORS headers, a network error to the
    # SDK, which keeps the event and retries it.
    stranger = [r for r in run.requests if r["origin"] == run.stranger]
    assert len(stranger) >= 2 and {r["method"] for r in stranger} == {"POST"}
    assert {r["status"] for r in stranger} == {403}
    assert len({tuple(r["ids"]) for r in stranger}) == 1  # the same event, retried
    assert not any(k.startswith("access-control-") for r in stranger for k in r["answer"])
    assert seen["kept"] == ["stranger_event"]
    # The page's origin is allowed, but not for crm-elsewhere: the SDK reads the 403, drops it.
    (refused,) = [r for r in run.requests if r.get("projects") == [ELSEWHERE]]
    assert refused["status"] == 403 and refused["origin"] == run.origin
    assert refused["answer"]["access-control-allow-origin"] == run.origin
    assert seen["left"] == 0


def test_every_event_is_in_kafka_once(run: Run) -> None:
    ids = Counter(env["event"]["event_id"] for env in run.events)
    assert len(ids) == TOTAL and set(ids.values()) == {1}
    assert {r["origin"] for r in run.requests} == {run.origin, run.stranger}
