"""Demo traffic: simulated users browsing, signing up and buying, sent to the collector."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import requests

FUNNEL = ("page_view", "signup_started", "signup_completed")
PAGES = ("/", "/pricing", "/docs", "/blog/launch", "/features")
UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
)


def _event(project: str, name: str, ts: datetime, anon: str, user_id: str | None,
           session: str, ua: str, rng: random.Random, **props: Any) -> dict[str, Any]:
    page = rng.choice(PAGES) if name == "page_view" else "/signup"
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_name": name,
        "project_id": project,
        "timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "user": {"user_id": user_id, "anonymous_id": anon, "session_id": session},
        "context": {"user_agent": ua, "locale": "en-US",
                    "page": {"url": f"https://shop.example.com{page}?utm_source=demo",
                             "referrer": "https://www.google.com/", "title": page}},
        "properties": props,
    }


def user_journeys(project: str, users: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Events of ``users`` simulated visitors; a share of them convert through FUNNEL."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    for _ in range(users):
        anon = f"anon-{rng.getrandbits(48):012x}"
        session = f"s-{rng.getrandbits(48):012x}"
        ua = rng.choice(UAS)
        ts = now - timedelta(seconds=rng.randint(60, 3600))
        user_id = None
        for _ in range(rng.randint(1, 6)):
            ts += timedelta(seconds=rng.randint(5, 90))
            yield _event(project, "page_view", ts, anon, user_id, session, ua, rng)
        if rng.random() < 0.5:
            ts += timedelta(seconds=rng.randint(5, 60))
            yield _event(project, "signup_started", ts, anon, user_id, session, ua, rng)
            if rng.random() < 0.6:
                user_id = f"user-{rng.getrandbits(32):08x}"
                ts += timedelta(seconds=rng.randint(5, 60))
                yield _event(project, "signup_completed", ts, anon, user_id, session, ua, rng,
                             plan=rng.choice(["free", "pro"]))
                if rng.random() < 0.3:
                    ts += timedelta(seconds=rng.randint(30, 300))
                    yield _event(project, "purchase", ts, anon, user_id, session, ua, rng,
                                 amount=rng.choice([9, 29, 99]))
        if rng.random() < 0.4:
            ts += timedelta(seconds=rng.randint(1, 30))
            yield _event(project, "button_click", ts, anon, user_id, session, ua, rng,
                         button_id=rng.choice(["cta", "nav", "footer"]))


def send(endpoint: str, api_key: str, events: list[dict[str, Any]], batch: int = 25,
         session: requests.Session | None = None) -> int:
    """POST ``events`` in batches; returns how many the collector accepted (202)."""
    http = session or requests.Session()
    accepted = 0
    for i in range(0, len(events), batch):
        chunk = events[i:i + batch]
        resp = http.post(endpoint, data=orjson.dumps(chunk), timeout=30,
                         headers={"Content-Type": "application/json", "X-API-Key": api_key})
        if resp.status_code != 202:
            raise RuntimeError(f"collector answered {resp.status_code}: {resp.text[:300]}")
        accepted += resp.json()["accepted"]
    return accepted
