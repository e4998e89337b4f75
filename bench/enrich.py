"""Enrichment throughput: the plain function chain on one core vs ``radixinsight enrich``.

200k realistic events: user agents drawn with a Zipf skew from >= 5k distinct strings of
the uap-core corpus, random public IPv4s looked up in a City database built here with
mmdb-writer, referrers mixed across search, social, internal and direct, half the
page URLs with UTM tags. Prints ONE JSON line:

    {"bench": "enrich", "events": .., "chain_eps": .., "direct_runner_eps": ..,
     "ratio_direct_to_chain": .., ...}

Usage: python bench/enrich.py [--events 200000]
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.enrich_file import run as run_enrich  # noqa: E402
from tests.fixtures.geoip import city_record, write_city_db  # noqa: E402
from transforms.enrichments import EnrichConfig, enrich_row, geo, open_chain  # noqa: E402
from transforms.parse import decode_envelope  # noqa: E402
from transforms.validate import ValidateConfig, validate_envelope  # noqa: E402

UA_CORPUS = REPO.parent / "shared" / "data" / "user_agents.txt"
REFERRERS = (["", "", "https://shop.example.com/cart"] * 10
             + ["https://www.google.com/search?q=red+shoes", "https://www.bing.com/search?q=shoes",
                "https://duckduckgo.com/?q=boots"] * 5
             + ["https://www.facebook.com/", "https://t.co/abc", "https://www.linkedin.com/feed/",
                "https://chatgpt.com/"] * 2
             + ["https://blog.example.org/post", "https://news.ycombinator.com/item?id=1"])
PAGES = ("/", "/pricing", "/docs/start", "/blog/launch", "/cart")
UTMS = ("?utm_source=newsletter&utm_medium=email&utm_campaign=nov",
        "?UTM_Source=google&utm_medium=cpc&utm_term=red%20shoes", "?gclid=abc123", "?fbclid=x")


def zipf_indices(n: int, k: int, s: float, rng: random.Random) -> list[int]:
    weights = [1 / (i + 1) ** s for i in range(k)]
    return rng.choices(range(k), weights=weights, k=n)


def public_ip(rng: random.Random) -> str:
    while True:
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
        if ip.is_global:
            return str(ip)


def build_city_db(path: Path) -> None:
    """A City database of /12 networks covering all of IPv4: every lookup finds a city."""
    cities = [("DE", "Berlin", "Europe/Berlin", ["Berlin"]),
              ("US", "San Francisco", "America/Los_Angeles", ["California"]),
              ("IN", "Bengaluru", "Asia/Kolkata", ["Karnataka"]),
              ("BR", "São Paulo", "America/Sao_Paulo", ["São Paulo"])]
    networks = []
    for i in range(4096):
        cc, city, tz, subs = cities[i % len(cities)]
        networks.append((f"{i >> 4}.{(i & 15) << 4}.0.0/12", city_record(cc, city, tz, subs)))
    write_city_db(path, networks)


def make_events(n: int, seed: int = 11) -> list[bytes]:
    rng = random.Random(seed)
    uas = [ln for ln in UA_CORPUS.read_text().splitlines() if ln][:6000]
    picks = zipf_indices(n, len(uas), 1.1, rng)
    now = datetime.now(UTC)
    lines = []
    for i in range(n):
        page = "https://shop.example.com" + rng.choice(PAGES) + (
            rng.choice(UTMS) if rng.random() < 0.5 else "")
        ev = {"event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
              "event_name": rng.choice(("page_view", "button_click", "signup_started")),
              "project_id": "bench",
              "timestamp": (now - timedelta(seconds=i)).isoformat(),
              "user": {"anonymous_id": f"a{rng.randrange(20000)}"},
              "context": {"ip": public_ip(rng), "user_agent": uas[picks[i]],
                          "page": {"url": page, "referrer": rng.choice(REFERRERS)}},
              "properties": {"i": i}}
        lines.append(orjson.dumps(ev))
    return lines


def time_chain(lines: list[bytes], validate: ValidateConfig, enrich: EnrichConfig) -> float:
    """events/s of decode -> validate -> enrich as plain function calls."""
    chain = open_chain(enrich)
    received = datetime.now(UTC).isoformat()
    start = time.perf_counter()
    ok = 0
    for line in lines:
        env = decode_envelope(line, received)
        enrich_row(validate_envelope(env, validate), chain)
        ok += 1
    return ok / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="radix-bench-enrich-"))
    atexit.register(shutil.rmtree, work, True)  # input and output files of the run
    db = work / "city.mmdb"
    build_city_db(db)
    lines = make_events(args.events)
    (work / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    validate = ValidateConfig()
    enrich = EnrichConfig({"geo": geo.Config(db_path=str(db))})
    chain_eps = time_chain(lines, validate, enrich)
    counts = run_enrich(str(work / "in.jsonl"), str(work / "out.jsonl"), validate, enrich,
                        say=lambda *_: None)
    direct_eps = counts["lines"] / counts["seconds"]
    print(json.dumps({
        "bench": "enrich", "events": args.events,
        "distinct_user_agents": len({orjson.loads(ln)["context"]["user_agent"] for ln in lines}),
        "chain_eps": round(chain_eps), "direct_runner_eps": round(direct_eps),
        "ratio_direct_to_chain": round(direct_eps / chain_eps, 3),
        "direct_rows": counts["rows"], "direct_bad_rows": counts["bad_rows"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }))


if __name__ == "__main__":
    main()
