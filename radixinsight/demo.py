"""Demo traffic: simulated users browsing, signing up and buying, sent to the collector."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass
class _Visitor:
    project: str
    run_id: str
    rng: random.Random
    anon: str
    session: str
    ua: str
    user_id: str | None = None

    def event(self, name: str, ts: datetime, **props: Any) -> dict[str, Any]:
        page = self.rng.choice(PAGES) if name == "page_view" else "/signup"
        return {
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "event_name": name,
            "project_id": self.project,
            "timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "user": {"user_id": self.user_id, "anonymous_id": self.anon,
                     "session_id": self.session},
            "context": {"user_agent": self.ua, "locale": "en-US",
                        "page": {"url": f"https://shop.example.com{page}?utm_source=demo",
                                 "referrer": "https://www.google.com/", "title": page}},
            "properties": {**props, "demo_run": self.run_id},
        }


def user_journeys(project: str, users: int, run_id: str,
                  seed: int | None = None) -> Iterator[dict[str, Any]]:
    """Events of ``users`` simulated visitors; a share of them convert through FUNNEL.

    Every event carries ``properties.demo_run = run_id`` so a run can be counted apart.
    """
    rng = random.Random(seed)
    now = datetime.now(UTC)
    for _ in range(users):
        v = _Visitor(project, run_id, rng, anon=f"anon-{rng.getrandbits(48):012x}",
                     session=f"s-{rng.getrandbits(48):012x}", ua=rng.choice(UAS))
        ts = now - timedelta(seconds=rng.randint(60, 3600))
        for _ in range(rng.randint(1, 6)):
            ts += timedelta(seconds=rng.randint(5, 90))
            yield v.event("page_view", ts)
        if rng.random() < 0.5:
            ts += timedelta(seconds=rng.randint(5, 60))
            yield v.event("signup_started", ts)
            if rng.random() < 0.6:
                v.user_id = f"user-{rng.getrandbits(32):08x}"
                ts += timedelta(seconds=rng.randint(5, 60))
                yield v.event("signup_completed", ts, plan=rng.choice(["free", "pro"]))
                if rng.random() < 0.3:
                    ts += timedelta(seconds=rng.randint(30, 300))
                    yield v.event("purchase", ts, amount=rng.choice([9, 29, 99]))
        if rng.random() < 0.4:
            ts += timedelta(seconds=rng.randint(1, 30))
            yield v.event("button_click", ts, button_id=rng.choice(["cta", "nav", "footer"]))


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
