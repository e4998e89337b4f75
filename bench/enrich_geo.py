"""Throughput of the geo and time enrichments, one core; prints one JSON line.

Builds a City database of ~50k networks (distinct random public /20s, a few hundred
distinct records) with mmdb-writer, then times ``geo.enrich`` on 200k random public
IPv4s (mostly misses, as the DB covers ~5% of the space), on 200k IPs inside the DB's
networks (all hits: the expensive path), and on a repeated-IP workload (20k distinct
IPs) with ``cache_size=0`` and with the default LRU (cold at the start), plus
``local_time.enrich`` on 200k rows.

    .venv/bin/python bench/enrich_geo.py [--networks 50000] [--ips 200000]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.geoip import city_record, write_city_db  # noqa: E402
from transforms.enrichments import geo, local_time  # noqa: E402

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Tokyo",
         "America/Los_Angeles", "Europe/London", "Australia/Sydney", "America/Sao_Paulo"]


def public_ipv4s(rng: random.Random, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        ip = ipaddress.IPv4Address(rng.getrandbits(32))
        if ip.is_global and not ip.is_multicast:
            out.append(str(ip))
    return out


def build_db(path: Path, rng: random.Random, n_networks: int) -> list[int]:
    """Write the DB; return the network base addresses (as ints) for hit sampling."""
    prefixes: set[int] = set()
    while len(prefixes) < n_networks:
        base = rng.getrandbits(20) << 12
        ip = ipaddress.IPv4Address(base)
        if ip.is_global and not ip.is_multicast and ipaddress.IPv4Address(base | 0xFFF).is_global:
            prefixes.add(base)
    records = [city_record(chr(65 + i % 26) + chr(65 + i // 26 % 26), f"City {i}",
                           ZONES[i % len(ZONES)], [f"Region {i % 50}"] if i % 4 else [])
               for i in range(300)]
    bases = sorted(prefixes)
    write_city_db(path, ((f"{ipaddress.IPv4Address(b)}/20", records[i % len(records)])
                         for i, b in enumerate(bases)))
    return bases


def rate(fn: Callable[[dict[str, Any], Any], Any], rows: Sequence[dict[str, Any]],
         ctx: Any, repeat: int = 3) -> float:
    """Best-of-``repeat`` calls per second."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for row in rows:
            fn(row, ctx)
        best = min(best, time.perf_counter() - t0)
    return round(len(rows) / best)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--networks", type=int, default=50_000)
    ap.add_argument("--ips", type=int, default=200_000)
    args = ap.parse_args(argv)
    rng = random.Random(42)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        bases = build_db(Path(tmp) / "bench-city.mmdb", rng, args.networks)
        build_s = time.perf_counter() - t0
        db = str(Path(tmp) / "bench-city.mmdb")
        ctx = geo.open(geo.Config(db_path=db, cache_size=0))
        cached_ctx = geo.open(geo.Config(db_path=db))  # default LRU

        random_rows = [{"ip_address": ip} for ip in public_ipv4s(rng, args.ips)]
        hit_rows = [{"ip_address": str(ipaddress.IPv4Address(rng.choice(bases)
                                                              | rng.getrandbits(12)))}
                    for _ in range(args.ips)]
        hit_rate = sum(bool(geo.enrich(r, ctx)["country"]) for r in random_rows) / args.ips
        # Real traffic repeats IPs (sessions, NAT): 200k events from 20k distinct hit IPs.
        pool = hit_rows[: args.ips // 10]
        repeated_rows = [rng.choice(pool) for _ in range(args.ips)]

        geo_random = rate(geo.enrich, random_rows, ctx)
        geo_hits = rate(geo.enrich, hit_rows, ctx)
        geo_repeated = rate(geo.enrich, repeated_rows, ctx)
        lru_repeated = rate(geo.enrich, repeated_rows, cached_ctx, repeat=1)  # cold cache
        lru_random = rate(geo.enrich, random_rows, cached_ctx, repeat=1)  # all misses
        geo.close(cached_ctx)
        reader = ctx.reader
        assert reader is not None
        get_only = rate(lambda row, _: reader.get(row["ip_address"]), hit_rows, None)
        mode = ctx.mode
        geo.close(ctx)

    start = datetime(2024, 1, 1, tzinfo=UTC)
    tz_choices = [*ZONES, "", "Mars/Base"]
    time_rows = [{"timestamp": start + timedelta(seconds=rng.randrange(366 * 86400)),
                  "timezone": rng.choice(tz_choices), "geo_timezone": rng.choice(ZONES)}
                 for _ in range(args.ips)]
    time_rate = rate(local_time.enrich, time_rows, local_time.open(local_time.Config()))

    print(json.dumps({
        "bench": "enrich_geo",
        "python": platform.python_version(),
        "maxminddb_mode": "MMAP_EXT" if mode == geo.maxminddb.MODE_MMAP_EXT else "AUTO",
        "db_networks": args.networks,
        "db_build_s": round(build_s, 1),
        "ips": args.ips,
        "geo_random_public_ipv4_per_s": geo_random,
        "random_hit_rate": round(hit_rate, 3),
        "geo_all_hits_per_s": geo_hits,
        "maxminddb_get_only_hits_per_s": get_only,
        "geo_repeated_ips_per_s": geo_repeated,
        "geo_repeated_ips_default_lru_per_s": lru_repeated,
        "geo_random_default_lru_per_s": lru_random,
        "time_per_s": time_rate,
    }))


if __name__ == "__main__":
    main()
