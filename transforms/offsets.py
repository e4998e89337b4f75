"""Commit a Kafka offset only once its record has reached the store.

Committing in the reader's bundle finalization is not enough: Prism holds what
flows between stages in memory, so a job killed after the reader's bundle finished
but before the sink wrote would lose records whose offsets were already committed.
Instead every record carries its source position (``SRC``: topic, partition,
offset) through parse, validate, enrich and identity; each sink reports the
positions of the rows it stored, dedup reports the copies it dropped, and
``CommitStoredOffsets`` commits, per partition, the end of the contiguous prefix
of positions accounted for. A restart replays from there: nothing is lost, and the
replayed rows collapse in the store by ``event_id``.

Every record ends in exactly one of ``events``, ``events_invalid`` or a dedup drop,
so the prefix always advances; a record that vanished would stop it (and be
replayed), never be skipped.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.typehints import Tuple

from transforms.kafka_source import KafkaPartition, KafkaReadConfig, commit_offset, start_offset

log = logging.getLogger(__name__)

Position = tuple[str, int, int]
Report = tuple[tuple[str, int], list[int]]


def reports(positions: Iterable[Position | None]) -> list[Report]:
    """Positions grouped per partition: what a sink emits after a successful flush."""
    by_part: dict[tuple[str, int], list[int]] = defaultdict(list)
    for pos in positions:
        if pos is not None:
            by_part[(pos[0], pos[1])].append(pos[2])
    return sorted(by_part.items())


def advance(next_offset: int, pending: set[int], offsets: Iterable[int]) -> tuple[int, set[int]]:
    """Add stored ``offsets``; return the new end of the contiguous prefix and what is
    still waiting beyond it."""
    pending = pending | {o for o in offsets if o >= next_offset}
    while next_offset in pending:
        pending.discard(next_offset)
        next_offset += 1
    return next_offset, pending


class _CommitFn(beam.DoFn):
    NEXT = ReadModifyWriteStateSpec("next_and_pending", PickleCoder())

    def __init__(self, cfg: KafkaReadConfig) -> None:
        self._cfg = cfg
        self._commits = beam.metrics.Metrics.counter("kafka_offsets", "commits")
        self._waiting = beam.metrics.Metrics.gauge("kafka_offsets", "records_waiting")

    def process(self, report: Report, state=beam.DoFn.StateParam(NEXT)):
        (topic, partition), offsets = report
        part = KafkaPartition(topic, partition)
        next_offset, pending = state.read() or (None, set())
        if next_offset is None:
            # Where the reader started this partition: the group's committed offset.
            try:
                next_offset = start_offset(self._cfg, part)
            except Exception as exc:  # broker away: keep the report, ask again next time
                log.warning("cannot read %s[%d]'s committed offset yet: %s", topic, partition,
                            exc)
                state.write((None, pending | set(offsets)))
                return iter(())
        moved, pending = advance(next_offset, pending, offsets)
        state.write((moved, pending))
        self._waiting.set(len(pending))
        if moved > next_offset:
            try:
                commit_offset(self._cfg, part, moved)
                self._commits.inc()
            except Exception as exc:  # the broker is away: the next advance commits past it
                log.warning("commit of %s[%d] at %d failed: %s", topic, partition, moved, exc)
        return iter(())


class CommitStoredOffsets(beam.PTransform):
    """Reports ``((topic, partition), [offsets])`` -> committed consumer-group offsets."""

    def __init__(self, cfg: KafkaReadConfig) -> None:
        super().__init__()
        self._cfg = cfg

    def expand(self, reports):
        return (reports
                | "Typed" >> beam.Map(_report).with_output_types(Tuple[Tuple[str, int], Any])
                | "Commit" >> beam.ParDo(_CommitFn(self._cfg)))


def _report(report: Report) -> Report:
    """Identity with a type: the committer's key coder must be deterministic."""
    return report
