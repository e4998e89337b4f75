"""User-agent enrichment throughput vs the pure ``user-agents`` library path.

Prints one JSON line:
- ``uncached_parses_per_s``: ``enrich`` with the cache off, every corpus string once
  (Rust resolver + bot regex + device rules); ``resolver_parses_per_s``: the bare resolver;
- ``cached_enrich_per_s``: ``enrich`` with the default cache over a Zipf(s=1.1) draw from
  the 17,816-string corpus (real traffic repeats a few UAs heavily), and its hit rate;
- ``user_agents_parses_per_s``: ``user_agents.parse`` + its device classes on 2,000 distinct
  strings (its legacy regex path is too slow for the whole corpus), and both ratios.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import user_agents
from ua_parser import Domain

from transforms.enrichments import user_agent as ua_enrich

CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "user_agents.txt"
ZIPF_S = 1.1
DRAWS = 300_000
SLOW_SAMPLE = 2_000


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def _user_agents_path(ua: str) -> tuple[bool, bool, bool, bool]:
    parsed = user_agents.parse(ua)
    return parsed.is_mobile, parsed.is_tablet, parsed.is_pc, parsed.is_bot


def main() -> None:
    corpus = CORPUS.read_text(encoding="utf-8").splitlines()
    rng = random.Random(11)

    uncached = ua_enrich.open(ua_enrich.Config(cache_size=0))
    t = time.perf_counter()
    for ua in corpus:
        uncached.resolver(ua, Domain.ALL)
    resolver_rate = _rate(len(corpus), time.perf_counter() - t)
    rows = [{"user_agent": ua} for ua in corpus]
    t = time.perf_counter()
    for row in rows:
        ua_enrich.enrich(row, uncached)
    uncached_rate = _rate(len(rows), time.perf_counter() - t)

    ranked = corpus[:]
    rng.shuffle(ranked)
    weights = [1.0 / (k ** ZIPF_S) for k in range(1, len(ranked) + 1)]
    draws = [{"user_agent": ua} for ua in rng.choices(ranked, weights=weights, k=DRAWS)]
    cached = ua_enrich.open(ua_enrich.Config())
    t = time.perf_counter()
    for row in draws:
        ua_enrich.enrich(row, cached)
    cached_rate = _rate(len(draws), time.perf_counter() - t)
    info = cached.lookup.cache_info()  # type: ignore[attr-defined]

    slow_sample = rng.sample(corpus, SLOW_SAMPLE)
    t = time.perf_counter()
    for ua in slow_sample:
        _user_agents_path(ua)
    slow_rate = _rate(len(slow_sample), time.perf_counter() - t)

    print(json.dumps({
        "corpus_strings": len(corpus),
        "resolver_parses_per_s": resolver_rate,
        "uncached_parses_per_s": uncached_rate,
        "cached_enrich_per_s": cached_rate,
        "cached_draws": DRAWS,
        "zipf_s": ZIPF_S,
        "cache_size": ua_enrich.Config().cache_size,
        "cache_hit_rate": round(info.hits / (info.hits + info.misses), 4),
        "user_agents_parses_per_s": slow_rate,
        "user_agents_sample": SLOW_SAMPLE,
        "uncached_vs_user_agents": round(uncached_rate / slow_rate, 1),
        "cached_vs_user_agents": round(cached_rate / slow_rate, 1),
    }))


if __name__ == "__main__":
    main()
