"""Kafka producer that reports, per record, when the broker has acknowledged it.

kafka-python sends from its own I/O thread; each record's future is bridged onto
the asyncio loop so a request handler can await every ack (acks=all) before it
answers 202.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError


class KafkaUnavailableError(RuntimeError):
    """The broker did not acknowledge in time; the client should retry later."""


class AckingProducer:
    def __init__(self, bootstrap_servers: str, *, ack_timeout_s: float = 10.0,
                 **options: Any) -> None:
        self._ack_timeout_s = ack_timeout_s
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            compression_type="lz4" if _has_lz4() else None,
            max_block_ms=2000,  # a full buffer or missing metadata fails fast -> 503
            bootstrap_timeout_ms=2000,
            **options,
        )

    async def send_all(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        """Send (key, value) records; return once all are acknowledged, else raise."""
        loop = asyncio.get_running_loop()
        waiters = []
        try:
            for key, value in records:
                fut = self._producer.send(topic, key=key, value=value)
                waiter = loop.create_future()
                fut.add_callback(_resolve, loop, waiter)
                fut.add_errback(_reject, loop, waiter)
                waiters.append(waiter)
        except KafkaError as exc:
            for w in waiters:
                w.cancel()
            raise KafkaUnavailableError(str(exc)) from exc
        try:
            await asyncio.wait_for(asyncio.gather(*waiters), self._ack_timeout_s)
        except (TimeoutError, KafkaError) as exc:
            raise KafkaUnavailableError(f"broker did not acknowledge: {exc!r}") from exc

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.close(timeout=timeout_s)


def _has_lz4() -> bool:
    try:
        import lz4  # noqa: F401
    except ImportError:
        return False
    return True


def _resolve(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future, _meta: Any) -> None:
    loop.call_soon_threadsafe(_set, waiter, None, None)


def _reject(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future, exc: BaseException) -> None:
    loop.call_soon_threadsafe(_set, waiter, None, exc)


def _set(waiter: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if waiter.done():
        return
    if exc is not None:
        waiter.set_exception(exc)
    else:
        waiter.set_result(result)
