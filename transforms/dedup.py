"""Drop repeated deliveries of one ``event_id``.

Producers retry (same ``event_id``), and the Kafka source is at-least-once, so one
event can arrive several times. In the stream, each browser's state remembers the ids
it sent for a window of arrival time (``is_copy``; the keyed step is
``transforms/browser_state.py``); a backfill sees all copies of a browser at once
(``first_copies``). Every dropped copy is counted (``dedup/duplicates_dropped``), not
dropped silently. What slips past (a copy after the window, or after a restart that
lost state) is collapsed by the store: ``events`` is a ReplacingMergeTree keyed by
``event_id``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

DEFAULT_WINDOW_S = 24 * 3600
DROPPED = "dropped"  # tagged output: the copies dropped (their stream positions are done)


def is_copy(seen: OrderedDict[str, int], event_id: str, at_us: int, window_us: int) -> bool:
    """Whether ``event_id`` arrived already within ``window_us`` before ``at_us``.

    ``seen`` (event id -> arrival time, oldest first) is the caller's state: ids older
    than the window are forgotten and a new id is recorded.
    """
    while seen and next(iter(seen.values())) < at_us - window_us:
        seen.popitem(last=False)
    if event_id in seen:
        return True
    seen[event_id] = at_us
    return False


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


def _received(row: dict[str, Any]) -> Any:
    return row.get("received_at") or row["timestamp"]
