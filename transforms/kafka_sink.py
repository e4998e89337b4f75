"""Write elements to a Kafka topic (the dead-letter topic ``radix.events.dlq``).

One kafka-python producer per worker (``setup``), acks=all and idempotent; every
bundle is flushed in ``finish_bundle`` and a record the broker did not acknowledge
raises, so the runner retries the bundle instead of losing a bad row.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import apache_beam as beam


class _ProduceFn(beam.DoFn):
    def __init__(self, bootstrap: str, topic: str, to_record: Callable[[Any], tuple[bytes, bytes]],
                 flush_timeout_s: float) -> None:
        self._bootstrap, self._topic, self._to_record = bootstrap, topic, to_record
        self._flush_timeout_s = flush_timeout_s
        self._producer: Any = None
        self._pending: list[Any] = []
        self._sent = beam.metrics.Metrics.counter("kafka_sink", f"{topic}_records")

    def _ensure_producer(self) -> Any:
        """Created on first use and retried for ``flush_timeout_s``: a broker that is
        restarting must not fail the job (on Prism a failed bundle fails the job)."""
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        deadline = time.monotonic() + self._flush_timeout_s
        while self._producer is None:
            try:
                self._producer = KafkaProducer(bootstrap_servers=self._bootstrap, acks="all",
                                               enable_idempotence=True, linger_ms=20)
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        return self._producer

    def start_bundle(self) -> None:
        self._pending = []

    def process(self, element: Any) -> None:
        key, value = self._to_record(element)
        self._pending.append(self._ensure_producer().send(self._topic, key=key, value=value))

    def finish_bundle(self) -> None:
        if not self._pending:
            return
        self._producer.flush(timeout=self._flush_timeout_s)
        for fut in self._pending:
            fut.get(timeout=0)  # raises the send's error, if any: the bundle is retried
        self._sent.inc(len(self._pending))
        self._pending = []

    def teardown(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)


class WriteToKafka(beam.PTransform):
    """Produce ``to_record(element) -> (key, value)`` to ``topic``; durable per bundle."""

    def __init__(self, bootstrap: str, topic: str,
                 to_record: Callable[[Any], tuple[bytes, bytes]], *,
                 flush_timeout_s: float = 30.0) -> None:
        super().__init__()
        self._fn = _ProduceFn(bootstrap, topic, to_record, flush_timeout_s)

    def expand(self, pcoll):
        return pcoll | "Produce" >> beam.ParDo(self._fn)
