"""Gather a bundle's elements per key into one list before a keyed (stateful) step.

A keyed step costs per element: each element is encoded, sent to the runner,
routed, sent back and decoded, and a stateful DoFn's state is read per key and
bundle. A browser's events come in batches (the SDK sends a request of several),
and the stream's gate has a single key, so one list per key and bundle carries the
same data in far fewer elements. Each value keeps its own timestamp, so the keyed
step can emit every value at the time it had (``unbundle``).
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import TimestampedValue
from apache_beam.typehints import Tuple
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from transforms.clickhouse_sink import RowBatch

# A key's values flow on early once this many are waiting in a bundle (bounds memory).
MAX_PER_KEY = 2_000

Stamped = tuple[int, Any]  # (timestamp in microseconds, value)


class _GatherFn(beam.DoFn):
    """(key, value) -> (key, [(timestamp_us, value), ...]) once per key, window and
    bundle. The list's own timestamp is its earliest value's, so no value emitted
    from it later can fall behind a watermark the list held."""

    def __init__(self, max_per_key: int) -> None:
        self._max = max_per_key
        self._lists: dict[tuple[Any, Any], list[Stamped]] = {}

    def start_bundle(self) -> None:
        self._lists = {}

    def process(self, kv: tuple[Any, Any], ts=beam.DoFn.TimestampParam,
                win=beam.DoFn.WindowParam):
        key, value = kv
        values = self._lists.setdefault((key, win), [])
        values.append((ts.micros, value))
        if len(values) >= self._max:
            del self._lists[(key, win)]
            yield _gathered(key, win, values)

    def finish_bundle(self):
        lists, self._lists = self._lists, {}
        for (key, win), values in lists.items():
            yield _gathered(key, win, values)


def _gathered(key: Any, win: Any, values: list[Stamped]) -> WindowedValue:
    first = min(t for t, _ in values)
    return WindowedValue((key, values), Timestamp(micros=first), (win,))


class GatherPerKey(beam.PTransform):
    """(key, value) -> (key, [(timestamp_us, value), ...]): one element per key per bundle.
    ``key_type`` types the output: the runner keys state by the encoded key, which must
    be deterministic (a pickled key is not)."""

    def __init__(self, key_type: Any, max_per_key: int = MAX_PER_KEY) -> None:
        super().__init__()
        self._key_type, self._max = key_type, max_per_key

    def expand(self, kvs):
        return kvs | "Gather" >> beam.ParDo(_GatherFn(self._max)).with_output_types(
            Tuple[self._key_type, RowBatch])  # the list crosses pickled whole


def unbundle(value: Any, at_us: int) -> TimestampedValue:
    """One value out of a gathered list, at the time it had."""
    return TimestampedValue(value, Timestamp(micros=at_us))
