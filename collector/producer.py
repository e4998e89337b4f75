"""Kafka producer that tells a request handler when the broker has acknowledged its records.

kafka-python sends from its own I/O thread. Each request's records form one ``_Batch``
whose per-record callbacks (on that thread) count down under a lock; only the batch's
first failure and its completion cross to the asyncio loop. Completions are queued and
the loop is woken once for all that are waiting (one produce response acknowledges
records of many requests), not once per request. The loop keeps a bounded in-flight
budget (records handed to Kafka and not yet acknowledged or failed): a request that would
exceed it, or that arrives while an earlier batch has waited longer than
``ack_timeout_s``, is refused at once (503), so memory stays bounded while Kafka is slow
or down, and the producer's own retries tell us when it is back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from kafka.partitioner.default import DefaultPartitioner, murmur2

from collector.config import KafkaBudget


class KafkaUnavailableError(RuntimeError):
    """Kafka did not (or cannot now) acknowledge; the client should retry later."""


class _AckTimeoutError(Exception):
    """The request's acknowledgements took longer than ``ack_timeout_s``."""


class CachedKeyPartitioner(DefaultPartitioner):
    """The default partitioner's choice (murmur2 of the key, as the Java client), with the
    pure-Python hash remembered: keys are users, and they repeat."""

    def __init__(self, cache_size: int = 200_000) -> None:
        self._hashes: dict[bytes, int] = {}
        self._cache_size = cache_size

    def partition(self, topic: str, key: Any, serialized_key: bytes | None, value: Any,
                  serialized_value: Any, cluster: Any) -> int:
        partitions = cluster.partitions_for_topic(topic)
        if serialized_key is None or not partitions:
            return super().partition(topic, key, serialized_key, value, serialized_value,
                                     cluster)
        h = self._hashes.get(serialized_key)
        if h is None:
            if len(self._hashes) >= self._cache_size:
                self._hashes.clear()
            h = self._hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        return sorted(partitions)[h % len(partitions)]


def producer_settings() -> dict[str, Any]:
    """The collector's producer: durable (acks=all, idempotent) and batched.

    Large batches matter most on the hot path: kafka-python wakes its I/O thread for each
    new batch, and 256 KiB batches cost ~18 µs of CPU per record against ~38 µs with the
    16 KiB default (measured here on 565-byte envelopes; bench/collector.py)."""
    return {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "compression_type": "lz4",
        "partitioner": CachedKeyPartitioner(),
        # kafka-python 3 buffers without a memory bound: the in-flight budget is the bound.
        # Metadata is fetched at start, so send() should never block; if it must, it gives
        # up quickly (-> 503).
        "max_block_ms": 1000,
        "request_timeout_ms": 10_000,
        "delivery_timeout_ms": 30_000,  # then unsent records fail and free the budget
        "bootstrap_timeout_ms": 2000,
    }


class _Batch:
    """One request's records: counted down on the I/O thread, reported to the loop."""

    __slots__ = ("error", "events", "lock", "nbytes", "owner", "remaining", "started", "timer",
                 "waiter")

    def __init__(self, owner: AckingProducer, events: int, nbytes: int,
                 waiter: asyncio.Future[None]) -> None:
        self.owner, self.events, self.nbytes, self.waiter = owner, events, nbytes, waiter
        self.started = time.monotonic()
        self.remaining = events
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.timer: asyncio.TimerHandle | None = None

    def ok(self, _metadata: Any) -> None:
        self._done(None)

    def failed(self, exc: BaseException) -> None:
        self._done(exc)

    def unsent(self, count: int, exc: BaseException) -> None:
        """``count`` records never reached the producer: they will not call back."""
        for _ in range(count):
            self._done(exc)

    def _done(self, exc: BaseException | None) -> None:
        with self.lock:
            self.remaining -= 1
            first_error = exc is not None and self.error is None
            if first_error:
                self.error = exc
            finished = self.remaining == 0
        if finished:
            self.owner._completed(self)
        elif first_error:  # answer the request now; the budget is freed when all are done
            self.waiter.get_loop().call_soon_threadsafe(_resolve, self.waiter, exc)


def _resolve(waiter: asyncio.Future[None],
             exc: BaseException | type[BaseException] | None) -> None:
    if waiter.done():
        return
    if exc is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(exc)


class AckingProducer:
    """A KafkaProducer plus the in-flight budget. Use from one event loop."""

    def __init__(self, bootstrap_servers: str, budget: KafkaBudget | None = None,
                 **options: Any) -> None:
        self.budget = budget or KafkaBudget()
        self._producer = KafkaProducer(bootstrap_servers=bootstrap_servers,
                                       **{**producer_settings(), **options})
        self.in_flight_events = 0
        self.in_flight_bytes = 0
        self._pending: dict[int, _Batch] = {}  # insertion order = age order
        # Finished batches, appended on the I/O thread, settled on the loop; one wake-up
        # (call_soon_threadsafe) is scheduled per non-empty queue, not per batch.
        self._finished: deque[_Batch] = deque()
        self._wake_scheduled = False

    def warm_up(self, topic: str) -> None:
        """Fetch the topic's metadata (blocking), so send() will not wait for it."""
        self._producer.partitions_for(topic)

    def stalled_for(self) -> float:
        """How long the oldest unacknowledged batch has waited (0 if none)."""
        oldest = next(iter(self._pending.values()), None)
        return 0.0 if oldest is None else time.monotonic() - oldest.started

    def available(self) -> bool:
        return self.stalled_for() < self.budget.ack_timeout_s

    async def send_all(self, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Send (key, value) records; return once all are acknowledged, else raise
        KafkaUnavailableError (never block the loop, never wait without bound)."""
        budget = self.budget
        if not self.available():
            raise KafkaUnavailableError(
                f"Kafka has not acknowledged for {self.stalled_for():.1f}s")
        nbytes = sum(len(k) + len(v) for k, v in records)
        if (self.in_flight_events + len(records) > budget.max_in_flight_events
                or self.in_flight_bytes + nbytes > budget.max_in_flight_bytes):
            raise KafkaUnavailableError("too many events waiting for Kafka's acknowledgement")
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        batch = _Batch(self, len(records), nbytes, waiter)
        self._pending[id(batch)] = batch
        self.in_flight_events += batch.events
        self.in_flight_bytes += nbytes
        send = self._producer.send
        for i, (key, value) in enumerate(records):
            try:
                future = send(topic, key=key, value=value)
            except KafkaError as exc:
                waiter.cancel()  # answered here; the errors counted below reach nobody
                batch.unsent(len(records) - i, exc)
                raise KafkaUnavailableError(f"Kafka producer refused the record: {exc}") from exc
            future.add_callback(batch.ok)
            future.add_errback(batch.failed)
        batch.timer = loop.call_later(budget.ack_timeout_s, _resolve, waiter, _AckTimeoutError)
        try:
            await waiter
        except _AckTimeoutError:
            raise KafkaUnavailableError(
                f"Kafka did not acknowledge within {budget.ack_timeout_s}s") from None
        except KafkaError as exc:
            raise KafkaUnavailableError(f"Kafka refused the records: {exc}") from exc

    def _completed(self, batch: _Batch) -> None:
        """On the I/O thread: queue a finished batch, wake the loop if nobody has yet."""
        self._finished.append(batch)
        if not self._wake_scheduled:
            self._wake_scheduled = True
            batch.waiter.get_loop().call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        """On the loop: free the budget of every finished batch and answer its request."""
        self._wake_scheduled = False  # before draining: a batch queued from now on wakes us
        finished = self._finished
        while finished:
            batch = finished.popleft()
            self._pending.pop(id(batch), None)
            self.in_flight_events -= batch.events
            self.in_flight_bytes -= batch.nbytes
            if batch.timer is not None:
                batch.timer.cancel()
            _resolve(batch.waiter, batch.error)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is buffered (up to ``timeout_s``), then disconnect."""
        self._producer.close(timeout=timeout_s)
