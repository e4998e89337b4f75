"""Event time for the stream: the lateness gate and the completeness watermark.

The Kafka reader stamps records with broker time; sessions need the event's own
time: each row's ``timestamp`` (client time, skew-corrected by validate). Rows
far older than the watermark would be dropped silently by the session GroupByKey,
so they pass a gate first:

A stateful DoFn on one key (fed one list per bundle, ``transforms/bundles.py``)
runs an event-time timer every ``tick_s``. A timer firing at T proves the watermark
has passed T, so the gate knows a lower bound of the watermark (``passed``) and
uses it to drop rows too late for any session (counted and emitted on
``TOO_LATE``). While the next tick is pending its timer holds the gate's output
watermark at most one step ahead of ``passed`` (a tick, or up to ``max_step_s``
while catching up on a backlog), so the session windows downstream (allowed
lateness = gate lateness + max step + a tick) never drop a row the gate let
through. Caveat: before the first tick of a freshly started job the gate knows
nothing and passes everything.

Each tick also publishes the completeness watermark: per project seen, "every event
with an earlier event time has arrived" (``WATERMARKS``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.typehints import Tuple
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from transforms.bundles import Stamped, unbundle
from transforms.clickhouse_sink import RowBatch

TOO_LATE = "too_late"
WATERMARKS = "watermarks"
WATERMARK_COLUMNS = ("project_id", "complete_until", "updated_at")
_GATE_KEY = "gate"


@dataclass(frozen=True)
class GateConfig:
    # Rows whose session would have closed more than this before the watermark are dropped.
    horizon_s: float
    tick_s: float = 10.0
    # While the watermark is far behind the wall clock (a backlog), tick up to this far
    # ahead at once instead of one tick per round trip; the session windows' lateness
    # margin covers it.
    max_step_s: float = 300.0
    # Stop ticking after this many ticks without rows (bounded inputs and tests must
    # stop; None keeps ticking, which an unbounded stream wants).
    max_idle_ticks: int | None = None

    def __post_init__(self) -> None:
        if self.horizon_s < 0 or self.tick_s <= 0 or self.max_step_s < self.tick_s:
            raise ValueError("horizon_s must be >= 0, tick_s > 0 and max_step_s >= tick_s")


def watermark_row(project_id: str, fired: Timestamp) -> dict[str, Any]:
    return {"project_id": project_id,
            "complete_until": fired.to_utc_datetime().replace(tzinfo=UTC),
            "updated_at": datetime.now(UTC)}


@dataclass(frozen=True)
class GateMemory:
    """The gate's state, all in one value: one read per bundle instead of four per row
    (each read is a round trip to the runner)."""

    passed_us: int | None = None  # a timer fired here: the watermark has passed it
    armed_us: int | None = None  # the pending tick
    last_row_us: int | None = None  # the latest row's event time
    projects: frozenset[str] = frozenset()


def admit(mem: GateMemory, project_id: str, at_us: int, horizon_us: int
          ) -> tuple[bool, GateMemory]:
    """(whether a row of ``project_id`` at ``at_us`` is in time, the memory after it)."""
    if mem.passed_us is not None and at_us + horizon_us < mem.passed_us:
        return False, mem
    last = at_us if mem.last_row_us is None else max(mem.last_row_us, at_us)
    projects = mem.projects if project_id in mem.projects else mem.projects | {project_id}
    return True, replace(mem, last_row_us=last, projects=projects)


class _GateFn(beam.DoFn):
    MEMORY = ReadModifyWriteStateSpec("gate", PickleCoder())
    TICK = TimerSpec("tick", TimeDomain.WATERMARK)

    def __init__(self, cfg: GateConfig) -> None:
        self._horizon_us = int(cfg.horizon_s * 1e6)
        self._tick_us = int(cfg.tick_s * 1e6)
        self._max_step_us = int(cfg.max_step_s * 1e6)
        self._max_idle = cfg.max_idle_ticks
        self._too_late = beam.metrics.Metrics.counter("sessions", "too_late_events")

    def process(self, kv: tuple[str, list[Stamped]], memory=beam.DoFn.StateParam(MEMORY),
                tick=beam.DoFn.TimerParam(TICK)):
        mem: GateMemory = memory.read() or GateMemory()  # one read per list
        admitted: list[Stamped] = []
        for us, row in kv[1]:
            in_time, mem = admit(mem, row["project_id"], us, self._horizon_us)
            if not in_time:
                self._too_late.inc()
                yield beam.pvalue.TaggedOutput(TOO_LATE, unbundle(row, us))
                continue
            if mem.armed_us is None:
                # never behind what a tick proved already: ``passed`` only moves forward
                first = (us // self._tick_us + 1) * self._tick_us
                mem = self._arm(tick, mem, max(first, (mem.passed_us or 0) + self._tick_us))
            admitted.append((us, row))
        memory.write(mem)
        if admitted:
            yield admitted  # at the list's time, its earliest event's

    def _arm(self, tick, mem: GateMemory, at_us: int) -> GateMemory:
        tick.set(Timestamp(micros=at_us))
        return replace(mem, armed_us=at_us)

    @on_timer(TICK)
    def on_tick(self, fired=beam.DoFn.TimestampParam, memory=beam.DoFn.StateParam(MEMORY),
                tick=beam.DoFn.TimerParam(TICK)):
        now = fired.micros
        mem = replace(memory.read() or GateMemory(), passed_us=now)
        for project in sorted(mem.projects):
            yield beam.pvalue.TaggedOutput(WATERMARKS, watermark_row(project, fired))
        idle_us = now - (mem.last_row_us or now)
        if self._max_idle is not None and idle_us >= self._max_idle * self._tick_us:
            memory.write(replace(mem, armed_us=None))
            return
        memory.write(self._arm(tick, mem, now + self._step(now)))

    def _step(self, now_us: int) -> int:
        """One tick when caught up; half the distance to the wall clock (whole ticks, at
        most ``max_step_s``) while behind."""
        behind = int(time.time() * 1e6) - now_us
        ticks = max(1, min(behind // 2, self._max_step_us) // self._tick_us)
        return ticks * self._tick_us


class _ToGateFn(beam.DoFn):
    """Lists of rows -> one ``(gate key, [(event time us, slim row), ...])`` per bundle,
    at its earliest event's time: the gate's single key then sees one element per
    bundle, not one per row."""

    def __init__(self, slim: Callable[[dict[str, Any]], dict[str, Any]] | None) -> None:
        self._slim = slim
        self._rows: dict[Any, list[Stamped]] = {}

    def start_bundle(self) -> None:
        self._rows = {}

    def process(self, rows: list[dict[str, Any]], win=beam.DoFn.WindowParam):
        slim, out = self._slim, self._rows.setdefault(win, [])
        for row in rows:
            out.append((event_time_us(row), slim(row) if slim else row))

    def finish_bundle(self):
        gathered, self._rows = self._rows, {}
        for win, stamped in gathered.items():
            if stamped:
                first = min(us for us, _ in stamped)
                yield WindowedValue((_GATE_KEY, stamped), Timestamp(micros=first), (win,))


def event_time_us(row: dict[str, Any]) -> int:
    return Timestamp.from_utc_datetime(row["timestamp"]).micros


class GateLateEvents(beam.PTransform):
    """Lists of rows -> lists of the rows in time, ``[(event time us, row), ...]``
    (``rows``, one per bundle), too-late rows (``TOO_LATE``, one by one, at their event
    time) and completeness rows (``WATERMARKS``). ``slim`` keeps only what later
    steps need of a row, so less crosses to the gate's single key."""

    def __init__(self, cfg: GateConfig,
                 slim: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        super().__init__()
        self._cfg, self._slim = cfg, slim

    def expand(self, rows):
        return (rows
                | "GatherForGate" >> beam.ParDo(_ToGateFn(self._slim)).with_output_types(
                    Tuple[str, RowBatch])  # the list crosses pickled whole
                | "Gate" >> beam.ParDo(_GateFn(self._cfg)).with_input_types(Tuple[str, Any])
                .with_outputs(TOO_LATE, WATERMARKS, main="rows"))
