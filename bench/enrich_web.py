"""Throughput of the campaign and referrer enrichments on a realistic traffic mix.

Prints one JSON line: enrich calls/s for each over ROWS rows, plus the referrer cache hit
rate of a cold first pass. Mix: 60% direct/internal, 25% search engines with terms,
10% social, 5% other referrers; half the landing URLs carry UTM tags (some a click id).
Seeded, so runs are comparable.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from transforms.enrichments import campaign, referrer

ROWS = 200_000
REPEATS = 3

SITE = "https://www.shop.example"
PATHS = [f"/products/{i}" for i in range(500)] + ["/", "/pricing", "/blog/launch", "/cart"]
ENGINES = ["https://www.google.com/search?q={}", "https://www.google.co.uk/search?q={}",
           "https://www.bing.com/search?q={}", "https://duckduckgo.com/?q={}",
           "https://search.yahoo.com/search?p={}", "https://yandex.ru/search/?text={}",
           "https://www.google.com/"]
SOCIAL = ["https://t.co/{}", "https://l.facebook.com/l.php?u={}", "https://www.linkedin.com/feed/",
          "https://www.reddit.com/r/python/comments/{}", "https://www.instagram.com/",
          "https://news.ycombinator.com/item?id={}"]
OTHER = ["https://chatgpt.com/", "https://mail.google.com/mail/u/0/",
         "https://blog-{}.example.net/post", "https://www.perplexity.ai/search/{}",
         "https://partner.example.org/links"]
WORDS = ["red", "shoes", "running", "café", "best", "cheap", "2026", "review", "size+42"]
UTM = ["utm_source=newsletter&utm_medium=email&utm_campaign=bf{}",
       "utm_source=Google&utm_medium=cpc&utm_campaign=brand&utm_term={}&gclid=Cj0{}",
       "UTM_SOURCE=facebook&utm_medium=social&utm_content=video%20{}",
       "gclid=EAIaIQ{}", "fbclid=IwAR{}", "utm_campaign=spring+sale+{}&utm_source=partner"]


def make_rows(n: int, rnd: random.Random) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        url = SITE + rnd.choice(PATHS)
        if rnd.random() < 0.5:
            url += "?" + rnd.choice(UTM).format(i % 97, i)
        r = rnd.random()
        if r < 0.30:
            ref = ""
        elif r < 0.60:
            ref = SITE + rnd.choice(PATHS)
        elif r < 0.85:
            term = "+".join(rnd.sample(WORDS, rnd.randint(1, 3)))
            ref = rnd.choice(ENGINES).format(term)
        elif r < 0.95:
            ref = rnd.choice(SOCIAL).format(rnd.randrange(5000))
        else:
            ref = rnd.choice(OTHER).format(rnd.randrange(300))
        rows.append({"page_url": url, "page_referrer": ref})
    return rows


def per_second(fn: Any, rows: list[dict[str, Any]], ctx: Any) -> float:
    best = 0.0
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for row in rows:
            fn(row, ctx)
        best = max(best, len(rows) / (time.perf_counter() - t0))
    return best


def main() -> None:
    rows = make_rows(ROWS, random.Random(42))
    t0 = time.perf_counter()
    rctx = referrer.open(referrer.Config())
    open_s = time.perf_counter() - t0
    cctx = campaign.open(campaign.Config())
    camp = per_second(campaign.enrich, rows, cctx)
    for row in rows:  # one cold pass: the hit rate a fresh worker sees on this mix
        referrer.enrich(row, rctx)
    info = rctx.parse.cache_info()
    ref = per_second(referrer.enrich, rows, rctx)
    print(json.dumps({
        "bench": "enrich_web", "rows": ROWS,
        "campaign_calls_per_s": round(camp), "referrer_calls_per_s": round(ref),
        "referrer_open_s": round(open_s, 3),
        "referrer_cold_cache_hit_rate": round(info.hits / max(1, info.hits + info.misses), 3),
    }))


if __name__ == "__main__":
    main()
