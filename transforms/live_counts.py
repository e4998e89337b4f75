"""Event counts per fixed event-time window, emitted while the stream runs.

Events are counted by arrival time (``received_at``: when the collector accepted
them, close to the broker time the Kafka reader's watermark follows), so a window
closes a moment after its end even when client clocks are off. An event that
reaches the job after its window closed (the reader's watermark is a heuristic) is
counted in a late pane of that window; panes discard what they emitted, so
summing a window's rows is exact.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam.transforms import trigger, window
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration


def counts_per_window(rows: list[dict[str, Any]], window_s: int
                      ) -> Iterator[TimestampedValue]:
    """A list of rows -> ((project, event name), count) per window of arrival time,
    stamped at the window's start: one element per key and window, not one per row."""
    counts: Counter[tuple[str, str, int]] = Counter()
    for row in rows:
        at = row.get("received_at") or row["timestamp"]
        counts[(row["project_id"], row["event_name"], int(at.timestamp()) // window_s)] += 1
    for (project_id, event_name, slot), n in counts.items():
        yield TimestampedValue(((project_id, event_name), n), slot * window_s)


class _ToCountRow(beam.DoFn):
    def process(self, kv: tuple[tuple[str, str], int], win=beam.DoFn.WindowParam):
        (project_id, event_name), events = kv
        yield {
            "window_start": win.start.to_utc_datetime().replace(tzinfo=UTC),
            "window_end": win.end.to_utc_datetime().replace(tzinfo=UTC),
            "project_id": project_id,
            "event_name": event_name,
            "events": events,
            "emitted_at": datetime.now(UTC),
        }


class CountPerWindow(beam.PTransform):
    """Lists of rows -> one count row per (project, event name, window of ``window_s``
    of arrival time)."""

    def __init__(self, window_s: int = 10, allowed_lateness_s: int = 300) -> None:
        super().__init__()
        self._window_s, self._lateness_s = window_s, allowed_lateness_s

    def expand(self, rows):
        return (
            rows
            | "CountInBundle" >> beam.FlatMap(counts_per_window, self._window_s)
            | "Window" >> beam.WindowInto(
                window.FixedWindows(self._window_s),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=Duration(seconds=self._lateness_s))
            | "Count" >> beam.CombinePerKey(sum)
            | "ToRow" >> beam.ParDo(_ToCountRow())
        )
