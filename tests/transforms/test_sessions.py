"""Sessions in event time: gap, merge by a late event, too-late rows, completeness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue
from hypothesis import given
from hypothesis import strategies as st

from transforms.event_time import TOO_LATE, WATERMARKS
from transforms.sessions import (
    SessionAcc,
    SessionConfig,
    Sessionize,
    add_event,
    identified_pieces,
    merge,
    pieces,
    reconcile,
    session_id,
    session_row,
    split_sessions,
)

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def row(t_s: float, *, anon: str = "a1", user: str = "", name: str = "page_view",
        path: str = "/p", project: str = "p1") -> dict:
    return {"project_id": project, "anonymous_id": anon, "user_id": user,
            "resolved_user_id": user or anon, "session_id": "sdk-1", "event_name": name,
            "event_type": "page" if name == "page_view" else "action", "page_path": path,
            "timestamp": T0 + timedelta(seconds=t_s)}


def t(offset_s: float) -> float:
    """Beam timestamp (seconds) of T0 + offset."""
    return (T0 + timedelta(seconds=offset_s)).timestamp()


def final_sessions(emitted: list[dict]) -> list[tuple]:
    """What `SELECT ... FROM sessions FINAL` shows: latest version per id, no tombstones."""
    latest: dict[str, dict] = {}
    for r in emitted:
        if r["session_id"] not in latest or r["version"] >= latest[r["session_id"]]["version"]:
            latest[r["session_id"]] = r
    return sorted((r["session_key"], r["session_start"], r["session_end"], r["event_count"])
                  for r in latest.values() if not r["is_deleted"])


# -- pure functions ---------------------------------------------------------------------

def test_accumulator_tracks_bounds_pages_entry_exit_and_latest_user():
    acc = SessionAcc()
    for r in (row(60, path="/b"), row(0, path="/a"), row(30, name="click", user="u9"),
              row(90, path="/a")):
        acc = add_event(acc, r)
    out = session_row("p1", "a1", acc, version=7)
    assert (out["duration_s"], out["event_count"], out["pageview_count"], out["unique_pages"],
            out["entry_page"], out["exit_page"], out["resolved_user_id"], out["is_bounce"]) == (
        90, 4, 3, 2, "/a", "/a", "u9", 0)
    assert out["session_start"] == T0 and out["sdk_session_ids"] == ["sdk-1"]


def test_merge_is_order_independent():
    a = add_event(SessionAcc(), row(0, path="/x"))
    b = add_event(add_event(SessionAcc(), row(50, user="u1", name="click")), row(70, path="/y"))
    assert merge(a, b) == merge(b, a) == merge(merge(SessionAcc(), b), a)


@pytest.mark.parametrize("events, bounce", [(1, 1), (2, 0)])
def test_bounce_is_a_single_event_session(events, bounce):
    acc = SessionAcc()
    for i in range(events):
        acc = add_event(acc, row(i))
    assert session_row("p1", "a1", acc, 1)["is_bounce"] == bounce


def test_session_id_depends_on_project_key_and_start_only():
    assert session_id("p", "a", 1) == session_id("p", "a", 1)
    assert len({session_id("p", "a", 1), session_id("p", "a", 2), session_id("q", "a", 1),
                session_id("p", "b", 1)}) == 4


def _acc(*offsets_s: float) -> SessionAcc:
    acc = SessionAcc()
    for o in offsets_s:
        acc = add_event(acc, row(o))
    return acc


def test_reconcile_merges_a_pane_the_runner_left_unmerged():
    # Seen on Prism: a late piece inside a session that had already fired came out as a
    # window of its own; its row (2 events) used to replace the 4-event session.
    known: dict = {}
    emitted: dict = {}
    first = reconcile(known, emitted, {"e1": _acc(0, 59, 161, 174)}, "p1", "a1", 120_000, 1)
    assert [(r["event_count"], r["is_deleted"]) for r in first] == [(4, 0)]
    second = reconcile(known, emitted, {"e3": _acc(75, 125)}, "p1", "a1", 120_000, 2)
    assert final_sessions(first + second) == [("a1", T0, T0 + timedelta(seconds=174), 6)]


def test_reconcile_takes_a_pane_that_contains_the_earlier_one_as_is():
    known: dict = {}
    emitted: dict = {}
    first = reconcile(known, emitted, {"e1": _acc(0)}, "p1", "a1", 60_000, 1)
    second = reconcile(known, emitted, {"e1": _acc(0), "e2": _acc(30)}, "p1", "a1", 60_000, 2)
    assert final_sessions(first + second) == [("a1", T0, T0 + timedelta(seconds=30), 2)]


def test_reconcile_bridging_piece_merges_two_sessions_and_tombstones_one():
    known: dict = {}
    emitted: dict = {}
    out = reconcile(known, emitted, {"e1": _acc(0)}, "p1", "a1", 60_000, 1)
    out += reconcile(known, emitted, {"e2": _acc(100)}, "p1", "a1", 60_000, 2)
    assert len(final_sessions(out)) == 2
    out += reconcile(known, emitted, {"e3": _acc(50)}, "p1", "a1", 60_000, 3)
    assert final_sessions(out) == [("a1", T0, T0 + timedelta(seconds=100), 3)]
    assert [r["session_start"] for r in out if r["is_deleted"]] == [T0 + timedelta(seconds=100)]


def test_identified_pieces_name_each_piece_by_its_smallest_event_id():
    events = [(10**6 * o, {**row(o), "event_id": f"id{o}"}) for o in (5, 1, 300, 3)]
    got = [(at, pid, acc.events) for at, pid, acc in identified_pieces(events, 60 * 10**6)]
    assert got == [(10**6, "id1", 3), (5 * 10**6, None, 0), (300 * 10**6, "id300", 1)]


# -- TestStream: streaming semantics ------------------------------------------------------

def _streaming_pipeline() -> TestPipeline:
    opts = PipelineOptions()
    opts.view_as(StandardOptions).streaming = True
    return TestPipeline(runner="BundleBasedDirectRunner", options=opts)


def _stream(*steps) -> TestStream:
    ts = TestStream()
    for kind, value in steps:
        if kind == "add":
            # one list, as DedupAndResolve emits them
            ts = ts.add_elements([TimestampedValue(list(value), t(0))])
        elif kind == "wm":
            ts = ts.advance_watermark_to(t(value))
        else:  # "walk": the watermark moves gradually, one gate tick at a time
            for step in range(value[0], value[1] + 1, 10):
                ts = ts.advance_watermark_to(t(step))
    return ts.advance_watermark_to_infinity()


CFG = SessionConfig(gap_s=60, allowed_lateness_s=120, gate_tick_s=10, gate_max_idle_ticks=150,
                    gate_max_step_s=10)


def _collect(pcoll, check):
    assert_that(pcoll, lambda emitted: check([emitted]))


def test_gap_splits_sessions_and_keys_are_separate():
    stream = _stream(("add", [row(0), row(30), row(200), row(10, anon="a2")]), ("wm", 1000))
    with _streaming_pipeline() as p:
        out = p | stream | Sessionize(CFG, streaming=True)

        def check(emitted):
            assert final_sessions(emitted[0]) == [
                ("a1", T0, T0 + timedelta(seconds=30), 2),
                ("a1", T0 + timedelta(seconds=200), T0 + timedelta(seconds=200), 1),
                ("a2", T0 + timedelta(seconds=10), T0 + timedelta(seconds=10), 1)]
        _collect(out["sessions"], check)


def test_late_event_merges_two_sessions_and_tombstones_the_replaced_one():
    stream = _stream(("add", [row(0), row(100)]), ("wm", 200),  # both sessions close
                     ("add", [row(50)]), ("wm", 400))  # late, bridges the gap: one session
    with _streaming_pipeline() as p:
        out = p | stream | Sessionize(CFG, streaming=True)

        def check(emitted):
            emitted = emitted[0]
            assert final_sessions(emitted) == [("a1", T0, T0 + timedelta(seconds=100), 3)]
            # the session that started at 100 s was deleted, not left as a duplicate
            assert [r["session_start"] for r in emitted if r["is_deleted"]] == [
                T0 + timedelta(seconds=100)]
        _collect(out["sessions"], check)


def test_too_late_event_is_dropped_from_sessions_and_counted():
    # horizon = gap 60 + lateness 120 = 180 s: at watermark 1000 s, an event at 500 s is too late
    late = row(500, anon="a9")
    stream = _stream(("add", [row(0)]), ("walk", (0, 1000)), ("add", [late, row(990)]),
                     ("wm", 2000))
    p = _streaming_pipeline()
    out = p | stream | Sessionize(CFG, streaming=True)
    assert_that(out[TOO_LATE] | "LateIds" >> beam.Map(lambda r: r["anonymous_id"]),
                equal_to(["a9"]), label="TooLate")

    def check(emitted):
        assert final_sessions(emitted[0]) == [
            ("a1", T0, T0, 1),
            ("a1", T0 + timedelta(seconds=990), T0 + timedelta(seconds=990), 1)]
    _collect(out["sessions"], check)
    # The BundleBased runner reports no user metrics; the too_late_events counter
    # counts what this output carries.
    p.run().wait_until_finish()


def test_completeness_watermark_follows_the_watermark_per_project():
    stream = _stream(("add", [row(0), row(5, project="p2")]), ("wm", 95))
    with _streaming_pipeline() as p:
        out = p | stream | Sessionize(CFG, streaming=True)

        def check(marks):
            assert {m["project_id"] for m in marks} == {"p1", "p2"}
            # ticks every 10 s of event time: the watermark at 95 s proves 90 s complete
            assert max(m["complete_until"] for m in marks) >= T0 + timedelta(seconds=90)
            assert all(m["complete_until"].second % 10 == 0 for m in marks)
        assert_that(out[WATERMARKS], check)


@pytest.mark.parametrize("offsets, want", [
    ([0, 30, 59], [3]),              # within the gap: one session
    ([0, 60, 200], [1, 1, 1]),       # a gap of exactly gap_s splits, as session windows do
    ([200, 0, 30], [2, 1]),          # input order does not matter
])
def test_split_sessions_matches_session_window_merging(offsets, want):
    rows = [row(o) for o in offsets]
    assert [s["event_count"] for s in split_sessions("p1", "a1", rows, 60, 1)] == want


def _merged(points: list[tuple[int, SessionAcc]], gap: int) -> list[tuple[int, int, SessionAcc]]:
    """What session windows make of timestamped accumulators: [t, t + gap) windows,
    overlapping ones merged, their accumulators merged."""
    out: list[tuple[int, int, SessionAcc]] = []
    for at, acc in sorted(points, key=lambda p: p[0]):
        if out and at < out[-1][1]:
            start, end, merged = out[-1]
            out[-1] = (start, max(end, at + gap), merge(merged, acc))
        else:
            out.append((at, at + gap, acc))
    return out


@given(st.lists(st.integers(0, 400), min_size=1, max_size=30), st.integers(1, 120))
def test_pieces_merge_into_the_sessions_the_events_make(offsets_s, gap_s):
    events = [(o * 10**6, row(o)) for o in offsets_s]
    gap_us = gap_s * 10**6
    by_event = _merged([(at, add_event(SessionAcc(), r)) for at, r in events], gap_us)
    by_piece = _merged(pieces(events, gap_us), gap_us)
    assert by_piece == by_event
    assert len(pieces(events, gap_us)) <= len(events)


def test_a_burst_of_events_is_one_piece_and_a_marker_at_its_end():
    events = [(10**6 * o, row(o)) for o in (5, 1, 3, 1)]
    got = [(at, acc.events) for at, acc in pieces(events, 60 * 10**6)]
    assert got == [(10**6, 4), (5 * 10**6, 0)]  # the marker keeps the window open to 5 s + gap
