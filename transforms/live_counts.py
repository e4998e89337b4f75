"""Event counts per fixed event-time window, emitted while the stream runs.

Elements are timestamped by the Kafka reader with the broker's record time, i.e.
when the collector accepted the event, so a window closes a moment after its end
even when client clocks are off. A record that reaches the job after its window
closed (the reader's watermark is a heuristic) is counted in a late pane of that
window; panes discard what they emitted, so summing a window's rows is exact.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Duration


def count_key(row: dict[str, Any]) -> tuple[tuple[str, str], int]:
    return (row["project_id"], row["event_name"]), 1


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
    """rows -> one count row per (project, event name, window of ``window_s``)."""

    def __init__(self, window_s: int = 10, allowed_lateness_s: int = 300) -> None:
        super().__init__()
        self._window_s, self._lateness_s = window_s, allowed_lateness_s

    def expand(self, rows):
        return (
            rows
            | "Window" >> beam.WindowInto(
                window.FixedWindows(self._window_s),
                trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
                allowed_lateness=Duration(seconds=self._lateness_s))
            | "Key" >> beam.Map(count_key)
            | "Count" >> beam.CombinePerKey(sum)
            | "ToRow" >> beam.ParDo(_ToCountRow())
        )
