"""Dedup and identity in the stream: one keyed step per browser.

Both need per-key state, and each state read is a round trip from the SDK worker to
the runner (Prism caches no user state between bundles). Keyed by ``event_id``,
dedup paid a read for every event, and identity another; together they were most
of the streaming job's time. Copies of an event come from the same browser (the
producer retries the same payload), so one key per browser serves both, as the
batch form (``pipelines/chain.per_browser``) already does: one state value holds
the browser's linked user and the event ids it sent within ``dedup_window_s``. A
bundle's events are gathered per browser first (``transforms/bundles.py``), so the
step sees one element and reads the state once per browser and bundle, however many
of its events the bundle carries. Where the runner lets it (Prism), the step holds a
bundle's browsers and reads their states with the requests in flight together
(``transforms/state_requests.py``) and commits their writes the same way: a round trip
per bundle, not one per browser.

An ``event_id`` reused by another browser is not caught here; the store collapses
it (``events`` is a ReplacingMergeTree keyed by ``event_id``), as it does any copy
that arrives after the window or after a restart that lost state.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.typehints import Tuple
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from transforms.bundles import GatherPerKey, Stamped
from transforms.clickhouse_sink import RowBatch
from transforms.dedup import DEFAULT_WINDOW_S, DROPPED, is_copy
from transforms.identity import DEFAULT_STATE_TTL_S, LINKS, identity_key, resolve
from transforms.state_requests import (
    commit_together,
    fast_path_available,
    read_together,
    write_over,
)

# Browsers held before their states are read together, at most this many or this long:
# bounds a bundle's memory, and lets outputs flow in long bundles (Flink's end at
# checkpoints).
MAX_PENDING = 1_000
MAX_HOLD_S = 0.2


@dataclass
class BrowserMemory:
    """One browser's state: its linked user, recent event ids (id -> arrival time,
    oldest first) and when the state expires (microseconds)."""

    linked: str | None = None
    seen: OrderedDict[str, int] = field(default_factory=OrderedDict)
    expires_us: int = 0


def _keyed(row: dict[str, Any]) -> tuple[tuple[str, str], dict[str, Any]]:
    return identity_key(row), row


@dataclass
class _Pending:
    """A browser's lists waiting in this bundle, with its state and timer handles."""

    memory: Any
    expire: Any
    window: Any
    values: list[Stamped]


class _DedupResolveFn(beam.DoFn):
    MEMORY = ReadModifyWriteStateSpec("browser", PickleCoder())
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, dedup_window_s: float, state_ttl_s: float,
                 max_pending: int = MAX_PENDING, together: bool = True) -> None:
        self._window_us = int(dedup_window_s * 1e6)
        self._ttl_us = int(max(state_ttl_s, dedup_window_s) * 1e6)
        # Re-arm the expiry timer only when it has gone this stale: a timer set per
        # event is a message to the runner per event.
        self._slack_us = min(self._ttl_us // 10, 24 * 3600 * 10**6)
        self._max_pending, self._together = max_pending, together
        self._pending: dict[tuple[Any, Any], _Pending] = {}
        self._held_since = 0.0
        self._dropped = beam.metrics.Metrics.counter("dedup", "duplicates_dropped")
        self._links = beam.metrics.Metrics.counter("identity", "links")
        self._conflicts = beam.metrics.Metrics.counter("identity", "conflicts")

    def start_bundle(self) -> None:
        self._pending = {}

    def process(self, kv: tuple[tuple[str, str], list[Stamped]],
                memory=beam.DoFn.StateParam(MEMORY), expire=beam.DoFn.TimerParam(EXPIRE),
                win=beam.DoFn.WindowParam):
        if not (self._together and fast_path_available(memory)):  # e.g. the Direct runner
            yield from self._apply(_Pending(memory, expire, win, kv[1]), memory.read())
            return
        # Hold the browser until the bundle ends (or enough are held), then read all
        # their states with the requests in flight together: one round trip, not one each.
        if not self._pending:
            self._held_since = time.monotonic()
        pending = self._pending.get((kv[0], win))
        if pending is None:
            self._pending[(kv[0], win)] = _Pending(memory, expire, win, list(kv[1]))
        else:  # the same browser twice in a bundle: one read, values in arrival order
            pending.values.extend(kv[1])
        if (len(self._pending) >= self._max_pending
                or time.monotonic() - self._held_since >= MAX_HOLD_S):
            yield from self._flush()

    def finish_bundle(self):
        yield from self._flush()

    def _flush(self):
        held, self._pending = list(self._pending.values()), {}
        memories = [h.memory for h in held]
        for pending, mem in zip(held, read_together(memories), strict=True):
            yield from self._apply(pending, mem)
        commit_together(memories)

    def _apply(self, pending: _Pending, read: BrowserMemory | None):
        mem = read or BrowserMemory()
        expires_us = mem.expires_us
        rows: list[dict[str, Any]] = []
        for at_us, row in pending.values:
            if is_copy(mem.seen, str(row["event_id"]), at_us, self._window_us):
                self._dropped.inc()
                yield _at(DROPPED, row, pending.window, at_us)  # accounted for
                continue
            resolved, link, mem.linked = resolve(row, mem.linked)
            if link is not None:
                (self._links if link["status"] == "linked" else self._conflicts).inc()
                yield _at(LINKS, link, pending.window, at_us)
            mem.expires_us = max(mem.expires_us, at_us + self._ttl_us)
            rows.append({**row, "resolved_user_id": resolved})
        if expires_us < mem.expires_us - self._slack_us:
            pending.expire.set(Timestamp(micros=mem.expires_us))  # forget it when idle for the TTL
        else:
            mem.expires_us = expires_us
        write_over(pending.memory, mem, was_empty=read is None)
        if rows:  # one list, at the time of its earliest arrival
            yield _at(None, rows, pending.window, min(t for t, _ in pending.values))

    @on_timer(EXPIRE)
    def forget(self, memory=beam.DoFn.StateParam(MEMORY)):
        yield from self._flush()  # a held browser's lists come before its state is dropped
        memory.clear()


def _at(tag: str | None, value: Any, window: Any, at_us: int) -> Any:
    """An output carrying its window, so it can leave from ``finish_bundle`` too."""
    out = WindowedValue(value, Timestamp(micros=at_us), (window,))
    return out if tag is None else beam.pvalue.TaggedOutput(tag, out)


class DedupAndResolve(beam.PTransform):
    """rows -> lists of the first copies of events with ``resolved_user_id`` (main
    ``rows``: one list per browser and bundle), the dropped copies (``DROPPED``) and
    identity link rows (``LINKS``). ``gathered``: the input is already gathered per
    browser, ``(identity key, [(arrival us, row), ...])`` (``ProcessEventsPerBrowser``).
    ``requests_together=False`` reads and writes each browser's state one at a time (the reference
    ``bench/state_requests.py`` compares with)."""

    def __init__(self, dedup_window_s: float = DEFAULT_WINDOW_S,
                 state_ttl_s: float = DEFAULT_STATE_TTL_S, *, gathered: bool = False,
                 requests_together: bool = True) -> None:
        super().__init__()
        if dedup_window_s <= 0 or state_ttl_s <= 0:
            raise ValueError("dedup_window_s and state_ttl_s must be positive")
        self._window_s, self._ttl_s, self._gathered = dedup_window_s, state_ttl_s, gathered
        self._together = requests_together

    def expand(self, rows):
        if not self._gathered:
            rows = (rows
                    | "KeyByBrowser" >> beam.Map(_keyed)
                    | "GatherPerBrowser" >> GatherPerKey(Tuple[str, str]))
        return (rows
                | "DedupResolve" >> beam.ParDo(_DedupResolveFn(self._window_s, self._ttl_s,
                                                      together=self._together))
                .with_input_types(Tuple[Tuple[str, str], Any])
                .with_output_types(RowBatch)
                .with_outputs(DROPPED, LINKS, main="rows"))
