"""Python client for server-side events: ``track()`` queues, a background thread sends.

    from collector.client import Client
    radix = Client("http://127.0.0.1:8080/collect", api_key="...", project_id="backend-service")
    radix.track("order_shipped", "user-42", {"order_id": 7})
    # batches go out every flush_interval_s or batch_size events; close() (also at exit) flushes

Each event gets its ``event_id`` when it is tracked, so a retried batch carries the same ids
and the pipeline's dedup collapses copies. Retries: connection errors, 429 and 5xx, with
exponential backoff and jitter, waiting at least the server's ``Retry-After``. A batch the
server refuses for good (400/401/403/413/415) is not retried: it is logged, counted in
``failed`` and handed to ``on_error``.
"""

from __future__ import annotations

import atexit
import contextlib
import gzip
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
import requests

log = logging.getLogger(__name__)
RETRYABLE = {429, 500, 502, 503, 504}


class QueueFullError(RuntimeError):
    """More events are waiting than ``max_queue``: the collector is down or too slow."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def retry_after_s(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), None if absent or bad."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def backoff_s(attempt: int, base_s: float, cap_s: float, server_s: float | None) -> float:
    """Full-jitter exponential backoff, never shorter than what the server asked for."""
    delay = random.uniform(0, min(cap_s, base_s * 2 ** attempt))
    return max(delay, server_s or 0.0)


class Client:
    def __init__(self, endpoint: str, api_key: str, project_id: str, *, batch_size: int = 100,
                 flush_interval_s: float = 1.0, max_queue: int = 100_000,
                 max_retries: int = 8, backoff_base_s: float = 0.5, backoff_cap_s: float = 30.0,
                 timeout_s: float = 10.0, gzip_min_bytes: int = 1024,
                 on_error: Callable[[list[dict[str, Any]], str], None] | None = None) -> None:
        if not 1 <= batch_size <= 500:
            raise ValueError("batch_size must be 1..500 (the collector's batch limit)")
        self.endpoint, self.project_id = endpoint, project_id
        self.batch_size, self.flush_interval_s = batch_size, flush_interval_s
        self.max_retries, self.timeout_s = max_retries, timeout_s
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._gzip_min = gzip_min_bytes
        self.on_error = on_error
        self.sent = self.failed = 0
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(max_queue)
        self._session = requests.Session()
        self._session.headers.update({"X-API-Key": api_key,
                                      "Content-Type": "application/json"})
        self._closing = threading.Event()
        self._hurry = threading.Event()  # set while flush() waits: no batching delay
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="radix-client", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def track(self, event_name: str, user_id: str | None, properties: dict[str, Any] | None = None,
              *, anonymous_id: str | None = None, timestamp: str | None = None,
              **fields: Any) -> str:
        """Queue one event; returns its ``event_id``. Raises QueueFullError when full."""
        user = {k: v for k, v in (("user_id", user_id), ("anonymous_id", anonymous_id)) if v}
        if not user:
            raise ValueError("an event needs a user_id or an anonymous_id")
        event = {"event_id": str(uuid.uuid4()), "event_name": event_name,
                 "project_id": self.project_id, "timestamp": timestamp or now_iso(),
                 "user": user, "properties": properties or {}, **fields}
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            raise QueueFullError(f"{self._queue.maxsize} events waiting to be sent") from None
        return event["event_id"]

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything tracked so far is sent or given up; False on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._hurry.set()
        try:
            with self._idle:
                while self._queue.unfinished_tasks:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        return False
                    self._idle.wait(0.05 if left is None else min(left, 0.05))
            return True
        finally:
            self._hurry.clear()

    def close(self, timeout_s: float = 30.0) -> None:
        """Send what is queued (up to ``timeout_s``), then stop the thread."""
        if self._closing.is_set():
            return
        if not self.flush(timeout_s):
            log.error("RadixInsight: closing with %d events not sent",
                      self._queue.unfinished_tasks)
        self._closing.set()
        self._thread.join(timeout=5)
        self._session.close()
        atexit.unregister(self.close)

    # -- background thread ---------------------------------------------------
    def _run(self) -> None:
        while not self._closing.is_set():
            batch = self._next_batch()
            if batch:
                self._deliver(batch)
                for _ in batch:
                    self._queue.task_done()
                with self._idle:
                    self._idle.notify_all()

    def _next_batch(self) -> list[dict[str, Any]]:
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.flush_interval_s
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0 or self._hurry.is_set():  # flush(): send what we have now
                break
            with contextlib.suppress(queue.Empty):
                batch.append(self._queue.get(timeout=min(left, 0.05)))
        return batch

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        body, headers = orjson.dumps(batch), {}
        if len(body) >= self._gzip_min:
            body, headers["Content-Encoding"] = gzip.compress(body, 5), "gzip"
        problem = "unknown"
        for attempt in range(self.max_retries + 1):
            server_wait = None
            try:
                resp = self._session.post(self.endpoint, data=body, headers=headers,
                                          timeout=self.timeout_s)
            except requests.RequestException as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 202:
                    self.sent += len(batch)
                    return
                problem = f"{resp.status_code} {resp.text[:200]}"
                if resp.status_code not in RETRYABLE:
                    break
                server_wait = retry_after_s(resp.headers.get("Retry-After"))
            if attempt < self.max_retries:
                time.sleep(backoff_s(attempt, *self._backoff, server_wait))
        self.failed += len(batch)
        log.error("RadixInsight: %d events not delivered: %s", len(batch), problem)
        if self.on_error is not None:
            self.on_error(batch, problem)
