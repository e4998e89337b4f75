"""Local Kafka broker costs: jar resolution, start, restart, crash-restart, idle memory.

    python bench/kafka_broker.py [--cold]

Prints one JSON line. ``--cold`` also times resolution with an empty Maven repository
(a new machine); otherwise resolution is timed with the warm ``~/.m2`` and an empty
jar cache, then with the cache complete.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import time
from pathlib import Path

from radixinsight.services.kafka_broker import KafkaBroker
from radixinsight.toolchain.kafka import ensure_kafka_libs, kafka_version


def _timed(fn) -> float:
    t0 = time.monotonic()
    fn()
    return round(time.monotonic() - t0, 2)


def _rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    return -1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cold", action="store_true", help="also time an empty Maven repo")
    args = parser.parse_args()
    out: dict[str, object] = {"bench": "kafka_broker", "kafka": kafka_version(),
                              "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        saved = {k: os.environ.get(k) for k in ("RADIX_CACHE", "MAVEN_OPTS")}
        if args.cold:
            os.environ["RADIX_CACHE"] = str(tmp_path / "cold-cache")
            os.environ["MAVEN_OPTS"] = f"-Dmaven.repo.local={tmp_path / 'm2'}"
            out["resolve_cold_s"] = _timed(ensure_kafka_libs)
            del os.environ["MAVEN_OPTS"]
        os.environ["RADIX_CACHE"] = str(tmp_path / "cache")
        out["resolve_warm_m2_s"] = _timed(ensure_kafka_libs)
        out["resolve_cached_s"] = _timed(ensure_kafka_libs)

        broker = KafkaBroker(tmp_path / "kafka")
        try:
            out["first_start_s"] = _timed(broker.start)  # format + start until ready
            time.sleep(5)  # let startup settle before sampling idle memory
            out["idle_rss_mb"] = _rss_mb(broker.pid)
            out["stop_s"] = _timed(broker.stop)
            out["restart_s"] = _timed(broker.start)
            os.kill(broker.pid, signal.SIGKILL)
            while broker.is_running():
                time.sleep(0.05)
            out["kill9_restart_s"] = _timed(broker.start)
        finally:
            broker.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    print(json.dumps(out))


if __name__ == "__main__":
    main()
