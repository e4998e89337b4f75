"""Dedup and identity in the stream: one keyed step per browser.

Both need per-key state, and each state read is a round trip from the SDK worker to
the runner (Prism caches no user state between bundles). Keyed by ``event_id``,
dedup paid a read for every event, and identity another; together they were most
of the streaming job's time. Copies of an event come from the same browser (the
producer retries the same payload), so one key per browser serves both, as the
batch form (``pipelines/chain.per_browser``) already does: one state value holds
the browser's linked user and the event ids it sent within ``dedup_window_s``, and
a bundle reads it once per browser, however many of its events it carries.

An ``event_id`` reused by another browser is not caught here; the store collapses
it (``events`` is a ReplacingMergeTree keyed by ``event_id``), as it does any copy
that arrives after the window or after a restart that lost state.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.typehints import Tuple
from apache_beam.utils.timestamp import Timestamp

from transforms.dedup import DEFAULT_WINDOW_S, DROPPED, is_copy
from transforms.identity import DEFAULT_STATE_TTL_S, LINKS, identity_key, resolve


@dataclass
class BrowserMemory:
    """One browser's state: its linked user, recent event ids (id -> arrival time,
    oldest first) and when the state expires (microseconds)."""

    linked: str | None = None
    seen: OrderedDict[str, int] = field(default_factory=OrderedDict)
    expires_us: int = 0


def _keyed(row: dict[str, Any]) -> tuple[tuple[str, str], dict[str, Any]]:
    return identity_key(row), row


class _DedupResolveFn(beam.DoFn):
    MEMORY = ReadModifyWriteStateSpec("browser", PickleCoder())
    EXPIRE = TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, dedup_window_s: float, state_ttl_s: float) -> None:
        self._window_us = int(dedup_window_s * 1e6)
        self._ttl_us = int(max(state_ttl_s, dedup_window_s) * 1e6)
        # Re-arm the expiry timer only when it has gone this stale: a timer set per
        # event is a message to the runner per event.
        self._slack_us = min(self._ttl_us // 10, 24 * 3600 * 10**6)
        self._dropped = beam.metrics.Metrics.counter("dedup", "duplicates_dropped")
        self._links = beam.metrics.Metrics.counter("identity", "links")
        self._conflicts = beam.metrics.Metrics.counter("identity", "conflicts")

    def process(self, kv: tuple[tuple[str, str], dict[str, Any]], ts=beam.DoFn.TimestampParam,
                memory=beam.DoFn.StateParam(MEMORY), expire=beam.DoFn.TimerParam(EXPIRE)):
        row, at_us = kv[1], ts.micros
        # Read once per bundle: after the write below, reads are served from the bundle.
        mem: BrowserMemory = memory.read() or BrowserMemory()
        if is_copy(mem.seen, str(row["event_id"]), at_us, self._window_us):
            self._dropped.inc()
            memory.write(mem)
            yield beam.pvalue.TaggedOutput(DROPPED, row)  # accounted for, not stored
            return
        resolved, link, mem.linked = resolve(row, mem.linked)
        if mem.expires_us < at_us + self._ttl_us - self._slack_us:
            mem.expires_us = at_us + self._ttl_us
            expire.set(Timestamp(micros=mem.expires_us))  # forget a browser idle for the TTL
        memory.write(mem)
        if link is not None:
            (self._links if link["status"] == "linked" else self._conflicts).inc()
            yield beam.pvalue.TaggedOutput(LINKS, link)
        yield {**row, "resolved_user_id": resolved}

    @on_timer(EXPIRE)
    def forget(self, memory=beam.DoFn.StateParam(MEMORY)):
        memory.clear()


class DedupAndResolve(beam.PTransform):
    """rows -> the first copy of each event with ``resolved_user_id`` (main ``rows``),
    the dropped copies (``DROPPED``) and identity link rows (``LINKS``)."""

    def __init__(self, dedup_window_s: float = DEFAULT_WINDOW_S,
                 state_ttl_s: float = DEFAULT_STATE_TTL_S) -> None:
        super().__init__()
        if dedup_window_s <= 0 or state_ttl_s <= 0:
            raise ValueError("dedup_window_s and state_ttl_s must be positive")
        self._window_s, self._ttl_s = dedup_window_s, state_ttl_s

    def expand(self, rows):
        return (rows
                # typed: the runner keys state by the encoded key, which must be deterministic
                | "KeyByBrowser" >> beam.Map(_keyed).with_output_types(Tuple[Tuple[str, str], Any])
                | "DedupResolve" >> beam.ParDo(_DedupResolveFn(self._window_s, self._ttl_s))
                .with_input_types(Tuple[Tuple[str, str], Any])
                .with_outputs(DROPPED, LINKS, main="rows"))
