"""Read Kafka topics with a pure-Python splittable DoFn on kafka-python.

Why not Java ``ReadFromKafka``: it needs a cross-language expansion service whose
jars are not served by the Maven registry reachable here, and a second JVM per
job. This reader runs on Prism and on portable Flink alike (see docs/runners.md).

Each Kafka partition is one element; its restriction is the offset range
``[next offset, ∞)``. A bundle polls one batch, claims each record's offset and
then checkpoints itself (``defer_remainder``), because portable runners do not
split an SDF on their own. Offsets are committed to the consumer group only in
bundle finalization, i.e. after the runner has durably taken the bundle's
output, so a restarted job resumes from the last finalized position
(at-least-once; the ClickHouse sink collapses the replays by ``event_id``).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

log = logging.getLogger(__name__)

# Open end of a partition's restriction: Kafka offsets are < 2**63.
END_OF_TIME_OFFSET = sys.maxsize


class KafkaPartition(NamedTuple):
    topic: str
    partition: int


class KafkaRecord(NamedTuple):
    """What the reader emits: the raw record, decoded by later transforms."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class KafkaReadConfig:
    """How to read; frozen so it pickles to workers unchanged."""

    bootstrap_servers: str
    topics: tuple[str, ...]
    group_id: str
    # Where a partition without a committed offset starts: earliest | latest.
    start_from: str = "earliest"
    max_records_per_poll: int = 1000
    # Keep polling within one bundle for up to this long while records keep coming.
    bundle_budget_s: float = 0.0
    poll_timeout_ms: int = 100
    # How long an idle partition sleeps before polling again.
    idle_resume_s: float = 0.2
    # When caught up, the watermark is set this far behind the wall clock,
    # so event-time windows close even when no data arrives.
    idle_watermark_lag_s: float = 2.0
    # False: never commit; a later stage commits once its output is durable (the archive
    # commits after its files are renamed into place, since runner state may be lost).
    commit_offsets: bool = True
    consumer_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    # While the broker cannot be reached, a partition's reader waits this long between tries.
    unavailable_retry_s: float = 2.0
    # True: emit each poll's records as ONE element, a list of KafkaRecords stamped with
    # its earliest record's time; the steps after it pay Beam's per-element cost per
    # poll, not per record (the stream). False: one element per record (the archive).
    emit_lists: bool = False

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise ValueError("bootstrap_servers is required")
        if not self.topics:
            raise ValueError("at least one topic is required")
        if self.start_from not in ("earliest", "latest"):
            raise ValueError(f"start_from must be earliest or latest, not {self.start_from!r}")
        if self.max_records_per_poll <= 0:
            raise ValueError("max_records_per_poll must be positive")


def _consumer(cfg: KafkaReadConfig, *, group: bool) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(
        bootstrap_servers=cfg.bootstrap_servers,
        group_id=cfg.group_id if group else None,
        enable_auto_commit=False,
        auto_offset_reset=cfg.start_from,
        **dict(cfg.consumer_options),
    )


def list_partitions(cfg: KafkaReadConfig) -> list[KafkaPartition]:
    """The partitions of the configured topics; raises if a topic does not exist."""
    consumer = _consumer(cfg, group=False)
    try:
        out = []
        for topic in cfg.topics:
            deadline = time.monotonic() + 30
            parts = consumer.partitions_for_topic(topic)
            while not parts and time.monotonic() < deadline:
                time.sleep(0.5)  # metadata for a just-created topic can lag
                parts = consumer.partitions_for_topic(topic)
            if not parts:
                raise RuntimeError(f"Kafka topic {topic!r} not found at {cfg.bootstrap_servers}")
            out.extend(KafkaPartition(topic, p) for p in sorted(parts))
        return out
    finally:
        consumer.close()


def start_offset(cfg: KafkaReadConfig, part: KafkaPartition) -> int:
    """The group's committed offset, else the configured end of the log."""
    from kafka import TopicPartition

    tp = TopicPartition(part.topic, part.partition)
    consumer = _consumer(cfg, group=True)
    try:
        committed = consumer.committed(tp)
        if committed is not None:
            return committed
        if cfg.start_from == "latest":
            return consumer.end_offsets([tp])[tp]
        return consumer.beginning_offsets([tp])[tp]
    finally:
        consumer.close()


class _UnboundedOffsetTracker(OffsetRestrictionTracker):
    """Offset tracker that only splits to checkpoint.

    A partition is one ordered log: a runner's dynamic split at a fraction of
    ``[offset, ∞)`` would hand another reader an offset far beyond the log's end
    (Prism does split that way). Checkpoints (fraction 0) are what we need.
    """

    def try_split(self, fraction_of_remainder: float):
        if fraction_of_remainder > 0:
            return None
        return super().try_split(fraction_of_remainder)

    def is_bounded(self) -> bool:
        return self._range.stop != END_OF_TIME_OFFSET


class _ReadPartitionFn(beam.DoFn, RestrictionProvider):
    """Reads one partition per element; the DoFn is its own restriction provider
    because the provider needs the config, known only at construction."""

    def __init__(self, cfg: KafkaReadConfig) -> None:
        self._cfg = cfg
        self._consumers: dict[KafkaPartition, Any] = {}

    def initial_restriction(self, element: KafkaPartition) -> OffsetRange:
        return OffsetRange(start_offset(self._cfg, element), END_OF_TIME_OFFSET)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return _UnboundedOffsetTracker(restriction)

    def split(self, element: KafkaPartition, restriction: OffsetRange):
        yield restriction  # a partition is read in order by one reader

    def restriction_size(self, element: KafkaPartition, restriction: OffsetRange) -> int:
        return 1  # unknown backlog; runners only use it to weigh splits

    def truncate(self, element: KafkaPartition, restriction: OffsetRange) -> None:
        return None  # on drain, stop reading

    def setup(self) -> None:
        self._consumers = {}

    def _consumer_for(self, part: KafkaPartition) -> Any:
        from kafka import TopicPartition

        consumer = self._consumers.get(part)
        if consumer is None:
            consumer = _consumer(self._cfg, group=True)
            consumer.assign([TopicPartition(part.topic, part.partition)])
            self._consumers[part] = consumer
        return consumer

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        part: KafkaPartition,
        # The finalizer must come before the SDF params: Beam passes those by keyword.
        finalizer=beam.DoFn.BundleFinalizerParam,
        tracker=beam.DoFn.RestrictionParam(),
        watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider()),
    ):
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        tp = TopicPartition(part.topic, part.partition)
        next_offset = tracker.current_restriction().start
        try:
            consumer = self._consumer_for(part)
            if consumer.position(tp) != next_offset:
                consumer.seek(tp, next_offset)
        except KafkaError as exc:
            # The broker is away. Failing the bundle would fail the whole job on Prism;
            # instead wait and resume from the same offset (nothing was claimed).
            log.warning("Kafka unavailable for %s[%d], retrying in %.0fs: %s", part.topic,
                        part.partition, self._cfg.unavailable_retry_s, exc)
            self._consumers.pop(part, None)
            finalizer.register(_Commit(self._cfg, part, None))
            tracker.defer_remainder(Duration.of(self._cfg.unavailable_retry_s))
            return
        last_claimed = None
        max_ts = None
        # Poll until the bundle's time budget is spent or a poll comes back empty:
        # runners with a costly bundle round trip (Flink) get bigger bundles.
        budget_end = time.monotonic() + self._cfg.bundle_budget_s
        while True:
            records = consumer.poll(timeout_ms=self._cfg.poll_timeout_ms,
                                    max_records=self._cfg.max_records_per_poll).get(tp, [])
            claimed: list[KafkaRecord] = []
            refused = False
            for rec in records:
                if rec.offset < next_offset:
                    continue  # a reset (e.g. after retention) may rewind below our start
                if not tracker.try_claim(rec.offset):
                    refused = True  # the restriction was split: the rest is not ours
                    break
                claimed.append(KafkaRecord(rec.topic, rec.partition, rec.offset, rec.timestamp,
                                           rec.key, rec.value))
            if claimed:
                last_claimed = claimed[-1].offset
                stamps = [r.timestamp_ms for r in claimed]
                max_ts = _later(max_ts, Timestamp(micros=max(stamps) * 1000))
                if self._cfg.emit_lists:
                    yield TimestampedValue(claimed, Timestamp(micros=min(stamps) * 1000))
                else:
                    for rec in claimed:
                        yield TimestampedValue(rec, Timestamp(micros=rec.timestamp_ms * 1000))
            if refused:
                return
            if not records or time.monotonic() >= budget_end:
                break
        try:
            self._advance_watermark(watermark, consumer, tp, max_ts)
        except KafkaError as exc:  # the log end is unknown while the broker is away
            log.warning("watermark of %s[%d] held: %s", part.topic, part.partition, exc)
        # Always register: Prism asks every bundle of this stage to finalize, and
        # a bundle with nothing registered is already released by then.
        finalizer.register(_Commit(self._cfg, part, None if last_claimed is None
                                   or not self._cfg.commit_offsets else last_claimed + 1))
        if last_claimed is not None:
            tracker.defer_remainder()
        else:
            tracker.defer_remainder(Duration.of(self._cfg.idle_resume_s))

    def _advance_watermark(self, watermark, consumer, tp, max_ts: Timestamp | None) -> None:
        end = consumer.highwater(tp)
        if end is None:  # no fetch answered yet on this consumer: ask the broker
            end = consumer.end_offsets([tp])[tp]
        caught_up = consumer.position(tp) >= end
        candidate = max_ts
        if caught_up:
            idle = Timestamp.of(time.time() - self._cfg.idle_watermark_lag_s)
            candidate = idle if candidate is None or idle > candidate else candidate
        current = watermark.current_watermark()
        if candidate is not None and (current is None or candidate > current):
            watermark.set_watermark(candidate)

    def teardown(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers = {}


def _later(a: Timestamp | None, b: Timestamp) -> Timestamp:
    return b if a is None or b > a else a


# One committing consumer per (cluster, group) and worker process: finalization
# runs once per bundle, and a new consumer each time costs a coordinator lookup.
_COMMITTERS: dict[tuple[str, str], Any] = {}
_COMMIT_LOCK = threading.Lock()


def commit_offset(cfg: KafkaReadConfig, part: KafkaPartition, next_offset: int) -> None:
    """Commit ``next_offset`` for ``part`` to the consumer group (thread-safe)."""
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    key = (cfg.bootstrap_servers, cfg.group_id)
    with _COMMIT_LOCK:  # kafka-python consumers are not thread-safe
        consumer = _COMMITTERS.get(key)
        if consumer is None:
            consumer = _COMMITTERS[key] = _consumer(cfg, group=True)
        try:
            consumer.commit({TopicPartition(part.topic, part.partition):
                             OffsetAndMetadata(next_offset, "", -1)})
        except Exception:
            _COMMITTERS.pop(key, None)  # reconnect next time; a later bundle commits past us
            consumer.close()
            raise


class _Commit:
    """Bundle-finalization callback: commit the group offset once output is durable."""

    def __init__(self, cfg: KafkaReadConfig, part: KafkaPartition,
                 next_offset: int | None) -> None:
        self._cfg, self._part, self._next = cfg, part, next_offset

    def __call__(self) -> None:
        if self._next is not None:
            commit_offset(self._cfg, self._part, self._next)


def _partitions_at_start(_impulse: bytes, cfg: KafkaReadConfig) -> list[KafkaPartition]:
    return list_partitions(cfg)


class ReadFromKafka(beam.PTransform):
    """Unbounded read of ``cfg.topics``; emits ``KafkaRecord`` timestamped by the broker."""

    def __init__(self, cfg: KafkaReadConfig) -> None:
        super().__init__()
        self._cfg = cfg

    def expand(self, pbegin):
        cfg = self._cfg
        return (
            pbegin
            | "Impulse" >> beam.Impulse()
            | "ListPartitions" >> beam.FlatMap(_partitions_at_start, cfg)
            | "Reshuffle" >> beam.Reshuffle()
            | "ReadPartitions" >> beam.ParDo(_ReadPartitionFn(cfg)).with_input_types(KafkaPartition)
        )
