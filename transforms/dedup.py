"""Drop repeated deliveries of one ``event_id`` in the stream.

Producers retry (same ``event_id``), and the Kafka source is at-least-once, so one
event can arrive several times. A stateful DoFn keyed by ``event_id`` remembers it
for ``window_s`` of event time (the arrival time the Kafka reader stamps), then
forgets it so state stays bounded. Beam's ``DeduplicatePerKey`` does the same but
drops silently; here every dropped copy is counted (``dedup/duplicates_dropped``).
What slips past (a copy after the window, or after a restart that lost state) is
collapsed by the store: ``events`` is a ReplacingMergeTree keyed by ``event_id``.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.coders import BooleanCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.typehints import Tuple
from apache_beam.utils.timestamp import Duration

DEFAULT_WINDOW_S = 24 * 3600
DROPPED = "dropped"  # tagged output: the copies dropped (their stream positions are done)


def dedup_key(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return str(row["event_id"]), row


class _FirstCopyFn(beam.DoFn):
    SEEN = ReadModifyWriteStateSpec("seen", BooleanCoder())
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, window_s: float) -> None:
        self._window = Duration(seconds=window_s)
        self._dropped = beam.metrics.Metrics.counter("dedup", "duplicates_dropped")

    def process(self, kv: tuple[str, dict[str, Any]], ts=beam.DoFn.TimestampParam,
                seen=beam.DoFn.StateParam(SEEN), expire=beam.DoFn.TimerParam(EXPIRE)):
        if seen.read():
            self._dropped.inc()
            yield beam.pvalue.TaggedOutput(DROPPED, kv[1])  # accounted for, not stored
            return
        seen.write(True)
        expire.set(ts + self._window)
        yield kv[1]

    @on_timer(EXPIRE)
    def forget(self, seen=beam.DoFn.StateParam(SEEN)):
        seen.clear()


def first_copies(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the earliest-received copy of each event_id, the other copies)."""
    kept: dict[str, dict[str, Any]] = {}
    dropped = []
    for row in sorted(rows, key=_received):
        key = str(row["event_id"])
        if key in kept:
            dropped.append(row)
        else:
            kept[key] = row
    return list(kept.values()), dropped


class _FirstOfGroupFn(beam.DoFn):
    """Batch: all copies of an event_id arrive together; keep one (the earliest received)."""

    def __init__(self) -> None:
        self._dropped = beam.metrics.Metrics.counter("dedup", "duplicates_dropped")

    def process(self, kv: tuple[str, list[dict[str, Any]]]):
        copies = sorted(kv[1], key=_received)
        yield copies[0]
        for copy in copies[1:]:
            self._dropped.inc()
            yield beam.pvalue.TaggedOutput(DROPPED, copy)


def _received(row: dict[str, Any]) -> Any:
    return row.get("received_at") or row["timestamp"]


class DedupEvents(beam.PTransform):
    """rows -> rows with at most one copy of each ``event_id`` per ``window_s`` (main
    ``rows``) and the dropped copies (``DROPPED``).

    ``streaming=False`` (backfills): a GroupByKey instead of per-key state and timers,
    which a batch runner executes far faster; the window is then the whole input.
    """

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, *, streaming: bool = True) -> None:
        super().__init__()
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self._window_s, self._streaming = window_s, streaming

    def expand(self, rows):
        if not self._streaming:
            return (rows
                    | "KeyByEventId" >> beam.Map(dedup_key)
                    | "GroupCopies" >> beam.GroupByKey()
                    | "FirstCopy" >> beam.ParDo(_FirstOfGroupFn()).with_outputs(
                        DROPPED, main="rows"))
        return (rows
                | "KeyByEventId" >> beam.Map(dedup_key)
                | "FirstCopy" >> beam.ParDo(_FirstCopyFn(self._window_s)).with_input_types(
                    Tuple[str, Any]).with_outputs(DROPPED, main="rows"))
