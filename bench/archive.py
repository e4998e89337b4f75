"""Archive file cost: Avro (fastavro) write rate and bytes per event vs JSONL.

Builds N collector envelopes like the demo's (distinct ids, users, pages, user agents),
then writes them as the archive job does (``avro_record`` + ``write_avro_file``: pruning
fields decoded from each envelope, temp file + rename) with each codec, and as JSONL;
reads each Avro file back with fastavro (the backfill reader's decoding cost).
Prints ONE JSON line:

    {"bench": "archive", "events": .., "avro_deflate": {"write_rps": .., "read_rps": ..,
                                                        "bytes_per_event": ..},
     "avro_null": {...}, "jsonl": {"write_rps": .., "bytes_per_event": ..},
     "jsonl_gzip": {"bytes_per_event": ..}, "deflate_vs_jsonl": .., ...}

Usage: python bench/archive.py [--events 100000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastavro

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.archive import Buffered, avro_record, load_schema, write_avro_file  # noqa: E402
from tests.fixtures.events import envelope, event  # noqa: E402

UA_CORPUS = REPO.parent / "shared" / "data" / "user_agents.txt"
PAGES = ("/", "/pricing", "/docs/start", "/blog/launch", "/cart")
NAMES = ("page_view", "page_view", "page_view", "button_click", "signup_started", "purchase")


def envelopes(n: int, seed: int = 7) -> list[bytes]:
    rnd = random.Random(seed)
    uas = (UA_CORPUS.read_text().splitlines()[:5000] if UA_CORPUS.exists()
           else [f"Mozilla/5.0 UA/{i}" for i in range(500)])
    t0 = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)
    out = []
    for i in range(n):
        ts = t0 + timedelta(milliseconds=i * 37)
        user = f"u{rnd.randrange(20_000)}"
        ev = event(event_id=str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
                   event_name=rnd.choice(NAMES), timestamp=ts.isoformat(),
                   user={"user_id": user, "anonymous_id": f"a-{user}", "session_id": f"s{i // 20}"},
                   properties={"plan": rnd.choice(["free", "pro"]), "n": rnd.randrange(100)})
        ev["context"] = {**ev["context"], "user_agent": rnd.choice(uas),
                         "page": {"url": f"https://shop.example.com{rnd.choice(PAGES)}",
                                  "title": "Shop", "referrer": ""}}
        out.append(envelope(ev, ip=f"203.0.{rnd.randrange(256)}.{rnd.randrange(256)}",
                            ua=rnd.choice(uas), received_at=ts))
    return out


def bench_avro(values: list[bytes], directory: str, codec: str) -> dict[str, float]:
    schema = load_schema()
    path = f"{directory}/dt=2026-12-04/hour=13/raw-{codec}.avro"
    t0_ms = 1_796_389_200_000
    started = time.perf_counter()
    size = write_avro_file(path, schema, (avro_record("radix.events.raw", 0,
                                                      Buffered(i, t0_ms + i, b"p1:u", v))
                                          for i, v in enumerate(values)), codec)
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    with open(path, "rb") as fh:  # what ReadFromAvro does per record, before the Beam step
        n = sum(1 for _ in fastavro.reader(fh))
    read_s = time.perf_counter() - started
    assert n == len(values)
    return {"write_rps": round(len(values) / seconds), "read_rps": round(n / read_s),
            "bytes_per_event": round(size / len(values), 1)}


def bench_jsonl(values: list[bytes], directory: str) -> dict[str, float]:
    path = Path(directory) / "raw.jsonl"
    started = time.perf_counter()
    with open(path, "wb") as fh:
        for v in values:
            fh.write(v + b"\n")
    seconds = time.perf_counter() - started
    return {"write_rps": round(len(values) / seconds),
            "bytes_per_event": round(path.stat().st_size / len(values), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    values = envelopes(args.events)
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        deflate = bench_avro(values, tmp, "deflate")
        null = bench_avro(values, tmp, "null")
        jsonl = bench_jsonl(values, tmp)
        gz = len(gzip.compress((Path(tmp) / "raw.jsonl").read_bytes(), 6)) / len(values)
    print(json.dumps({
        "bench": "archive", "events": args.events,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "avro_deflate": deflate, "avro_null": null, "jsonl": jsonl,
        "jsonl_gzip": {"bytes_per_event": round(gz, 1)},
        "deflate_vs_jsonl": round(deflate["bytes_per_event"] / jsonl["bytes_per_event"], 3),
        "deflate_vs_jsonl_gzip": round(deflate["bytes_per_event"] / gz, 3),
        "deflate_us_per_event": round(1e6 / deflate["write_rps"], 1),
    }))


if __name__ == "__main__":
    main()
