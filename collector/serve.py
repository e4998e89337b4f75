"""Run the collector under uvicorn (httptools + uvloop), in one or several worker processes.

Every worker builds its own app from the environment (``config_from_env``): its own
Kafka producer, rate limiter (shared only through Redis) and metrics files.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import sys
import tempfile
from typing import Any

from collector.app import Collector, create_app
from collector.config import CollectorConfig, config_from_env
from collector.metrics import MULTIPROC_ENV

log = logging.getLogger(__name__)


def uvicorn_options(host: str, port: int) -> dict[str, Any]:
    """Shared by ``serve`` and the test fixture, so tests run what production runs."""
    return {
        "host": host, "port": port, "http": "httptools", "loop": "uvloop",
        "log_level": "warning", "access_log": False, "server_header": False,
        # X-Forwarded-For is ours to judge (RADIX_TRUSTED_PROXIES); uvicorn would
        # otherwise trust it from 127.0.0.1.
        "proxy_headers": False,
        "backlog": 2048, "timeout_keep_alive": 15,
    }


def app_from_env() -> Collector:
    """uvicorn's app factory in each worker process."""
    tune_process()
    return create_app(config_from_env())


def tune_process() -> None:
    # kafka-python's I/O thread needs the GIL several times per produce round trip; with
    # the default 5 ms switch interval a busy event loop makes it wait up to 5 ms each time.
    sys.setswitchinterval(float(os.environ.get("RADIX_SWITCH_INTERVAL_S", "0.0005")))
    # Kafka keeps every in-flight record's futures alive for a few ms, so with the default
    # threshold (700) the cyclic GC ran every ~11 requests: ~25 µs of the ~340 µs of CPU a
    # 10-event request costs (measured in process). Request objects die by reference
    # counting; cycles are rare, so a higher threshold only delays a few.
    # Imported modules and settings live forever: keep them out of every collection.
    gc.set_threshold(int(os.environ.get("RADIX_GC_GEN0_THRESHOLD", "10000")), 10, 10)
    gc.freeze()


def serve(host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          cfg: CollectorConfig | None = None) -> None:
    import uvicorn

    opts = uvicorn_options(host, port)
    if cfg is not None or workers <= 1:
        tune_process()
        uvicorn.run(create_app(cfg or config_from_env()), **opts)
        return
    config_from_env()  # fail here, once, on a bad setting rather than in every worker
    if not os.environ.get("RADIX_REDIS_URL"):
        log.warning("%d workers without RADIX_REDIS_URL: each enforces the rate limits on "
                    "its own", workers)
    own_dir = None
    if not os.environ.get(MULTIPROC_ENV):
        own_dir = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="radix-metrics-")
    try:
        uvicorn.run("collector.serve:app_from_env", factory=True, workers=workers, **opts)
    finally:
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)
