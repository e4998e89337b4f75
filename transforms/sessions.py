"""Server-side sessions in event time: Beam session windows per browser.

Sessions are keyed by the browser (``anonymous_id``; server events without one by
``user_id``) and labelled with the resolved user, so an identify in the middle of a
visit does not split it in two. A session ends after ``gap_s`` without events.
Panes accumulate, so every emission is the whole session so far; a late event that
extends a session re-emits it with a newer ``version``, and one that bridges two
sessions merges them. The session's id is derived from its key and start, so an
extension replaces the stored row; a merge or an earlier start changes the id, and
``_SupersedeFn`` then emits tombstones (``is_deleted = 1``) for the rows the new
session replaces. It rebuilds each pane's session from the pieces of the browser it
has seen (``reconcile``), so a runner that leaves overlapping windows unmerged cannot
make a smaller row replace a bigger one. ``sessions`` is a
ReplacingMergeTree(version, is_deleted): read it with FINAL and each session appears
once, corrected.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms import trigger, window
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import TimestampedValue
from apache_beam.typehints import Tuple
from apache_beam.utils.timestamp import Duration, Timestamp

from transforms.event_time import TOO_LATE, WATERMARKS, GateConfig, GateLateEvents

SESSION_COLUMNS = (
    "project_id", "session_key", "session_id", "resolved_user_id", "sdk_session_ids",
    "session_start", "session_end", "duration_s", "event_count", "pageview_count",
    "unique_pages", "entry_page", "exit_page", "is_bounce", "version", "is_deleted",
)
DEFAULT_GAP_S = 30 * 60


def session_key(row: dict[str, Any]) -> tuple[str, str]:
    return row["project_id"], row.get("anonymous_id") or row.get("user_id") or ""


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


@dataclass
class SessionAcc:
    """What a session remembers; every field merges associatively."""

    start_ms: int | None = None
    end_ms: int | None = None
    events: int = 0
    pageviews: int = 0
    pages: frozenset[str] = frozenset()
    entry: tuple[int, str] | None = None  # (time, path) of the first page view
    exit: tuple[int, str] | None = None  # (time, path) of the last page view
    # (identified?, time, resolved user): the latest identified user wins over anonymous ids
    user: tuple[bool, int, str] | None = None
    sdk_sessions: frozenset[str] = frozenset()


def _min(a, b):
    return b if a is None else a if b is None else min(a, b)


def _max(a, b):
    return b if a is None else a if b is None else max(a, b)


def add_event(acc: SessionAcc, row: dict[str, Any]) -> SessionAcc:
    t = _ms(row["timestamp"])
    is_page = row.get("event_type") == "page"
    path = row.get("page_path") or ""
    resolved = row.get("resolved_user_id") or ""
    return merge(acc, SessionAcc(
        start_ms=t, end_ms=t, events=1, pageviews=int(is_page),
        pages=frozenset([path]) if path and is_page else frozenset(),
        entry=(t, path) if is_page else None, exit=(t, path) if is_page else None,
        user=(resolved != (row.get("anonymous_id") or ""), t, resolved),
        sdk_sessions=frozenset([row["session_id"]]) if row.get("session_id") else frozenset()))


def merge(a: SessionAcc, b: SessionAcc) -> SessionAcc:
    return SessionAcc(
        start_ms=_min(a.start_ms, b.start_ms), end_ms=_max(a.end_ms, b.end_ms),
        events=a.events + b.events, pageviews=a.pageviews + b.pageviews,
        pages=a.pages | b.pages, entry=_min(a.entry, b.entry), exit=_max(a.exit, b.exit),
        user=_max(a.user, b.user), sdk_sessions=a.sdk_sessions | b.sdk_sessions)


class SessionCombineFn(beam.CombineFn):
    """Inputs are identified pieces of sessions ``(piece id, SessionAcc)`` (see
    ``identified_pieces``); the output keeps them by id, markers left out."""

    def create_accumulator(self) -> dict[str, SessionAcc]:
        return {}

    def add_input(self, acc: dict[str, SessionAcc], piece: tuple[str | None, SessionAcc]
                  ) -> dict[str, SessionAcc]:
        if piece[0] is not None:
            acc[piece[0]] = piece[1]
        return acc

    def merge_accumulators(self, accs) -> dict[str, SessionAcc]:
        out: dict[str, SessionAcc] = {}
        for acc in accs:
            out.update(acc)
        return out

    def extract_output(self, acc: dict[str, SessionAcc]) -> dict[str, SessionAcc]:
        return acc


def session_id(project_id: str, key: str, start_ms: int) -> str:
    digest = hashlib.blake2b(f"{project_id}\x00{key}\x00{start_ms}".encode(), digest_size=12)
    return digest.hexdigest()


def session_row(project_id: str, key: str, acc: SessionAcc, version: int) -> dict[str, Any]:
    start, end = acc.start_ms or 0, acc.end_ms or 0
    return {
        "project_id": project_id, "session_key": key,
        "session_id": session_id(project_id, key, start),
        "resolved_user_id": acc.user[2] if acc.user else key,
        "sdk_session_ids": sorted(acc.sdk_sessions),
        "session_start": datetime.fromtimestamp(start / 1000, UTC),
        "session_end": datetime.fromtimestamp(end / 1000, UTC),
        "duration_s": (end - start) // 1000, "event_count": acc.events,
        "pageview_count": acc.pageviews, "unique_pages": len(acc.pages),
        "entry_page": acc.entry[1] if acc.entry else "",
        "exit_page": acc.exit[1] if acc.exit else "",
        # A bounce: a single event (one page seen, nothing else done).
        "is_bounce": int(acc.events == 1),
        "version": version, "is_deleted": 0,
    }


def split_sessions(project_id: str, key: str, rows: list[dict[str, Any]], gap_s: float,
                   version: int) -> list[dict[str, Any]]:
    """One browser's events, all known (batch) -> its sessions: a new one starts after a
    gap of ``gap_s`` or more, exactly where Beam's session windows would split."""
    gap_ms, out = gap_s * 1000, []
    acc, last = SessionAcc(), None
    for row in sorted(rows, key=lambda r: r["timestamp"]):
        t = _ms(row["timestamp"])
        if last is not None and t - last >= gap_ms:
            out.append(session_row(project_id, key, acc, version))
            acc = SessionAcc()
        acc, last = add_event(acc, row), t
    if last is not None:
        out.append(session_row(project_id, key, acc, version))
    return out


def pieces(stamped: list[tuple[int, dict[str, Any]]], gap_us: int
           ) -> list[tuple[int, SessionAcc]]:
    """One browser's events of a bundle ((event time us, row)) -> fewer elements that
    session windows merge into the same sessions: [(time us, SessionAcc)].

    Events closer than ``gap_us`` become one piece, its accumulator at its first
    event's time. A window spans [t, t + gap), so a piece longer than the gap also
    needs empty markers at later events, each less than a gap after the previous
    one and the last at its last event: their windows chain into the span
    [first, last + gap) that the events' own windows cover.
    """
    out: list[tuple[int, SessionAcc]] = []
    piece: list[tuple[int, dict[str, Any]]] = []
    for at, row in sorted(stamped, key=lambda s: s[0]):
        if piece and at - piece[-1][0] >= gap_us:
            out += _piece(piece, gap_us)
            piece = []
        piece.append((at, row))
    return out + _piece(piece, gap_us) if piece else out


def _piece(events: list[tuple[int, dict[str, Any]]], gap_us: int
           ) -> list[tuple[int, SessionAcc]]:
    acc = SessionAcc()
    for _, row in events:
        acc = add_event(acc, row)
    point = events[0][0]
    out = [(point, acc)]
    for (at, _), (following, _) in itertools.pairwise(events):
        if following - point >= gap_us:  # its window would not reach the last point's
            point = at
            out.append((at, SessionAcc()))
    if events[-1][0] != point:
        out.append((events[-1][0], SessionAcc()))
    return out


def tombstone(row: dict[str, Any], version: int) -> dict[str, Any]:
    return {**row, "version": version, "is_deleted": 1}


def _pieces_per_browser(stamped: list[tuple[int, dict[str, Any]]], gap_us: int
                        ) -> Iterator[TimestampedValue]:
    """A bundle's rows in time -> (browser, (piece id, piece of a session)) at the piece's
    time (``pieces``; markers have no id): the session windows' GroupByKey then moves a
    few elements per browser and bundle, not one per event."""
    per_browser: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for at, row in stamped:
        per_browser.setdefault(session_key(row), []).append((at, row))
    for key, rows in per_browser.items():
        for at, piece_id, acc in identified_pieces(rows, gap_us):
            yield TimestampedValue((key, (piece_id, acc)), Timestamp(micros=at))


def identified_pieces(stamped: list[tuple[int, dict[str, Any]]], gap_us: int
                      ) -> list[tuple[int, str | None, SessionAcc]]:
    """``pieces`` with an id for each piece that holds events (the smallest event id
    in it, unique because an event is in one piece); markers get None."""
    ordered = sorted(stamped, key=lambda s: s[0])
    out, used = [], 0
    for at, acc in pieces(ordered, gap_us):
        if not acc.events:
            out.append((at, None, acc))
            continue
        group = ordered[used:used + acc.events]
        used += acc.events
        out.append((at, min(str(r.get("event_id") or f"{a}") for a, r in group), acc))
    return out


def reconcile(known: dict[str, SessionAcc], emitted: dict[str, tuple[dict[str, Any], frozenset]],
              parts: dict[str, SessionAcc], project_id: str, key: str, gap_ms: int,
              version: int) -> list[dict[str, Any]]:
    """One pane of a browser's session window -> the session rows (and tombstones) to
    store, from every piece of the browser seen so far (``known``, updated).

    A runner that merges windows correctly emits panes that contain the earlier ones;
    Prism 2.77 was seen emitting a late piece as a window of its own although it
    overlapped a session already fired, and the newer, smaller row then replaced the
    bigger one. So sessions are rebuilt here from the pieces, with the windows' rule
    (the next piece starts less than a gap after the session's end): exact whatever
    the panes hold. ``emitted`` (session id -> (row, piece ids)) is updated.
    """
    known.update(parts)
    sessions: list[tuple[set[str], SessionAcc]] = []
    for pid, acc in sorted(known.items(), key=lambda kv: (kv[1].start_ms or 0, kv[0])):
        if sessions and (acc.start_ms or 0) < (sessions[-1][1].end_ms or 0) + gap_ms:
            sessions[-1][0].add(pid)
            sessions[-1] = (sessions[-1][0], merge(sessions[-1][1], acc))
        else:
            sessions.append(({pid}, acc))
    out: list[dict[str, Any]] = []
    for pids, acc in sessions:
        if pids.isdisjoint(parts):
            continue
        row = session_row(project_id, key, acc, version)
        for sid, (old, old_pids) in list(emitted.items()):
            if sid != row["session_id"] and not old_pids.isdisjoint(pids):
                del emitted[sid]
                out.append(tombstone(old, version))
        emitted[row["session_id"]] = (row, frozenset(pids))
        out.append(row)
    return out


class _SupersedeFn(beam.DoFn):
    """Per browser: the pieces seen and the sessions emitted; each pane's sessions are
    rebuilt from the pieces (``reconcile``) and replace the rows they cover."""

    SEEN = ReadModifyWriteStateSpec("seen", PickleCoder())
    CLEANUP = TimerSpec("cleanup", TimeDomain.WATERMARK)

    def __init__(self, gap_s: float, keep_s: float) -> None:
        self._gap_ms, self._keep = int(gap_s * 1000), Duration(seconds=keep_s)

    def process(self, kv: tuple[tuple[str, str], dict[str, SessionAcc]],
                seen_state=beam.DoFn.StateParam(SEEN),
                cleanup=beam.DoFn.TimerParam(CLEANUP)):
        (project_id, key), parts = kv
        if not parts:  # only markers (their pieces were dropped as late): no session
            return
        known, emitted = seen_state.read() or ({}, {})
        rows = reconcile(known, emitted, parts, project_id, key, self._gap_ms,
                         time.time_ns() // 1000)  # wall-clock version: newer panes win
        seen_state.write((known, emitted))
        end = max(acc.end_ms or 0 for acc in known.values())
        cleanup.set(Timestamp(micros=end * 1000) + self._keep)
        yield from rows

    @on_timer(CLEANUP)
    def forget(self, seen_state=beam.DoFn.StateParam(SEEN)):
        seen_state.clear()


@dataclass(frozen=True)
class SessionConfig:
    gap_s: float = DEFAULT_GAP_S
    # How late (event time behind the watermark) an event may still change its session.
    allowed_lateness_s: float = 3600.0
    # Streaming only: the lateness gate and completeness watermark (see event_time.py).
    gate_tick_s: float = 10.0
    gate_max_idle_ticks: int | None = None
    gate_max_step_s: float = 300.0
    # Streaming only: also emit sessions every this many seconds before they close (0: off).
    early_s: float = 0.0
    # The late-firing trigger, same panes either way: "always" (Prism runs no trigger with
    # state on merging windows, beam#31438) or "count" (AfterCount(1): Flink's Java side
    # requires a once-trigger there and rejects Always).
    late_firing: str = "always"

    def __post_init__(self) -> None:
        if self.gap_s <= 0 or self.allowed_lateness_s < 0 or self.early_s < 0:
            raise ValueError("gap_s must be > 0; allowed_lateness_s and early_s >= 0")
        if self.late_firing not in ("always", "count"):
            raise ValueError("late_firing must be 'always' or 'count'")


class Sessionize(beam.PTransform):
    """rows -> session rows and tombstones (``sessions``); with ``streaming``, the input
    is LISTS of rows (as ``DedupAndResolve`` emits them) and the outputs also include
    ``too_late`` rows and per-project completeness rows (``watermarks``)."""

    def __init__(self, cfg: SessionConfig | None = None, *, streaming: bool = False) -> None:
        super().__init__()
        self._cfg, self._streaming = cfg or SessionConfig(), streaming

    def expand(self, rows):
        cfg = self._cfg
        out: dict[str, Any] = {}
        lateness = cfg.allowed_lateness_s
        if self._streaming:
            # The gate is one key: only what sessions need goes through it, not whole rows.
            gated = rows | "GateLateEvents" >> GateLateEvents(GateConfig(
                horizon_s=cfg.gap_s + cfg.allowed_lateness_s, tick_s=cfg.gate_tick_s,
                max_step_s=max(cfg.gate_max_step_s, cfg.gate_tick_s),
                max_idle_ticks=cfg.gate_max_idle_ticks), slim=session_fields)
            rows, out[TOO_LATE], out[WATERMARKS] = gated.rows, gated[TOO_LATE], gated[WATERMARKS]
            # the gate decides; the window never drops (event_time.py)
            lateness += max(cfg.gate_max_step_s, cfg.gate_tick_s) + cfg.gate_tick_s
        # Late firings with Always, not AfterCount(1): the same panes, and Prism runs
        # only triggers without state on merging windows (beam#31438). Early firings
        # (processing time) are such a trigger: Flink only.
        if not self._streaming:
            # Batch: every event of a browser is known, so a GroupByKey and one sorted pass
            # give the sessions Beam's session windows would, without the merging-window
            # machinery (10x the cost on the batch runner).
            out["sessions"] = (rows
                               | "KeyByBrowser" >> beam.Map(_keyed)
                               | "GroupByBrowser" >> beam.GroupByKey()
                               | "SplitSessions" >> beam.FlatMap(_split, cfg.gap_s))
            return out
        early = (trigger.AfterProcessingTime(cfg.early_s) if cfg.early_s > 0 else None)
        sessions = (
            rows
            | "PiecesPerBrowser" >> beam.FlatMap(_pieces_per_browser, int(cfg.gap_s * 1e6))
            .with_output_types(Tuple[Tuple[str, str], Any])
            | "SessionWindows" >> beam.WindowInto(
                window.Sessions(cfg.gap_s),
                trigger=trigger.AfterWatermark(early=early, late=(
                    trigger.Always() if cfg.late_firing == "always" else trigger.AfterCount(1))),
                accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
                allowed_lateness=Duration(seconds=lateness))
            | "Aggregate" >> beam.CombinePerKey(SessionCombineFn())
            .with_output_types(Tuple[Tuple[str, str], Any]))
        out["sessions"] = (
            sessions
            | "Rewindow" >> beam.WindowInto(window.GlobalWindows())
            | "Supersede" >> beam.ParDo(_SupersedeFn(cfg.gap_s, cfg.gap_s + lateness))
            .with_input_types(Tuple[Tuple[str, str], Any]))
        return out


SESSION_FIELDS = ("timestamp", "event_type", "page_path", "resolved_user_id", "anonymous_id",
                  "session_id", "event_id")


def session_fields(row: dict[str, Any]) -> dict[str, Any]:
    """What sessions need of an event: its key's fields and SESSION_FIELDS."""
    return {f: row.get(f) for f in (*SESSION_FIELDS, "project_id", "user_id")}


def _keyed(row: dict[str, Any]) -> tuple[tuple[str, str], dict[str, Any]]:
    # Only what a session needs crosses the shuffle and sits in window state.
    return session_key(row), {f: row.get(f) for f in SESSION_FIELDS}


def _split(kv: tuple[tuple[str, str], list[dict[str, Any]]], gap_s: float) -> list[dict[str, Any]]:
    (project_id, key), rows = kv
    return split_sessions(project_id, key, list(rows), gap_s, time.time_ns() // 1000)
