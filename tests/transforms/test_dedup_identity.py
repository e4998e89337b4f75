"""Dedup by event_id and identity resolution, as functions and on a stream (one keyed
step per browser: transforms/browser_state.py)."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from datetime import UTC, datetime, timedelta

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from transforms.browser_state import DedupAndResolve
from transforms.dedup import DROPPED, first_copies, is_copy
from transforms.identity import LINKS, identity_key, resolve, resolve_in_order

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def row(n: int, *, anon: str = "a1", user: str = "", project: str = "p1") -> dict:
    return {"event_id": uuid.UUID(int=n), "project_id": project, "anonymous_id": anon,
            "user_id": user, "timestamp": T0 + timedelta(seconds=n)}


def streaming() -> TestPipeline:
    opts = PipelineOptions()
    opts.view_as(StandardOptions).streaming = True
    return TestPipeline(runner="BundleBasedDirectRunner", options=opts)


# -- identity as a function --------------------------------------------------------------

@pytest.mark.parametrize("anon, user, linked, want_resolved, want_status, want_linked", [
    ("a1", "", None, "a1", None, None),           # anonymous, nothing known
    ("a1", "", "u1", "u1", None, "u1"),           # anonymous, browser linked before
    ("a1", "u1", None, "u1", "linked", "u1"),     # identify: a new link
    ("a1", "u1", "u1", "u1", None, "u1"),         # identify again: nothing new
    ("a1", "u2", "u1", "u2", "conflict", "u1"),   # a second user: refused, recorded
    ("", "u1", None, "u1", None, None),           # server event: its own user
])
def test_resolve(anon, user, linked, want_resolved, want_status, want_linked):
    resolved, link, remembered = resolve(row(1, anon=anon, user=user), linked)
    assert resolved == want_resolved and remembered == want_linked
    assert (link or {}).get("status") == want_status
    if link:
        assert (link["anonymous_id"], link["user_id"], link["event_id"]) == (
            anon, user, uuid.UUID(int=1))


def test_identity_key_is_the_browser_else_the_user():
    assert identity_key(row(1)) == ("p1", "a1")
    assert identity_key(row(1, anon="", user="u7")) == ("p1", "user:u7")


def _ids(rows: list[dict]) -> list[int]:
    return [r["event_id"].int for r in rows]


def _resolved(rows: list[dict]) -> list[tuple[int, str]]:
    return [(r["event_id"].int, r["resolved_user_id"]) for r in rows]


# -- on a stream ---------------------------------------------------------------------------

def test_dedup_drops_later_copies_of_an_event_id():
    a, b = row(1), row(2)
    stream = (TestStream()
              .add_elements([TimestampedValue(a, 10), TimestampedValue(b, 10)])
              .advance_watermark_to(20)
              .add_elements([TimestampedValue(dict(a), 25), TimestampedValue(dict(b), 25)])
              .advance_watermark_to_infinity())
    with streaming() as p:
        out = p | stream | DedupAndResolve(dedup_window_s=3600)
        assert_that(out.rows | beam.FlatMap(_ids), equal_to([1, 2]))
        assert_that(out[DROPPED] | "Dropped" >> beam.Map(lambda r: r["event_id"].int),
                    equal_to([1, 2]), label="Dropped")


def test_dedup_forgets_after_its_window():
    a = row(1)
    stream = (TestStream()
              .add_elements([TimestampedValue(a, 10)])
              .advance_watermark_to(200)  # the 60 s window of the first copy has expired
              .add_elements([TimestampedValue(dict(a), 210)])
              .advance_watermark_to_infinity())
    with streaming() as p:
        out = p | stream | DedupAndResolve(dedup_window_s=60)
        assert_that(out.rows | beam.FlatMap(_ids), equal_to([1, 1]))


def test_identify_resolves_later_anonymous_events_and_refuses_a_second_user():
    events = [row(1), row(2, user="u1"), row(3), row(4, user="u2"), row(5),
              row(6, anon="a2"), row(7, anon="", user="u3")]
    stream = TestStream()
    for i, ev in enumerate(events):  # in order, one at a time
        stream = stream.add_elements([TimestampedValue(ev, i)]).advance_watermark_to(i + 0.5)
    with streaming() as p:
        out = p | stream.advance_watermark_to_infinity() | DedupAndResolve()
        resolved = out.rows | beam.FlatMap(_resolved)
        assert_that(resolved, equal_to([(1, "a1"), (2, "u1"), (3, "u1"), (4, "u2"), (5, "u1"),
                                        (6, "a2"), (7, "u3")]), label="Resolved")
        links = out[LINKS] | beam.Map(lambda r: (r["anonymous_id"], r["user_id"], r["status"],
                                                 r["event_id"].int))
        assert_that(links, equal_to([("a1", "u1", "linked", 2), ("a1", "u2", "conflict", 4)]),
                    label="Links")


def test_a_redelivered_identify_links_once_and_its_copy_is_dropped():
    identify = row(1, user="u1")
    stream = (TestStream()
              .add_elements([TimestampedValue(identify, 10)])
              .advance_watermark_to(20)
              .add_elements([TimestampedValue(dict(identify), 25), TimestampedValue(row(2), 26)])
              .advance_watermark_to_infinity())
    with streaming() as p:
        out = p | stream | DedupAndResolve()
        assert_that(out.rows | beam.FlatMap(_resolved),
                    equal_to([(1, "u1"), (2, "u1")]))
        assert_that(out[LINKS] | "Links" >> beam.Map(lambda r: r["event_id"].int),
                    equal_to([1]), label="Links")
        assert_that(out[DROPPED] | "Dropped" >> beam.Map(lambda r: r["event_id"].int),
                    equal_to([1]), label="Dropped")


def test_a_browser_idle_past_the_state_ttl_is_forgotten():
    stream = (TestStream()
              .add_elements([TimestampedValue(row(1, user="u1"), 10)])
              .advance_watermark_to(500)  # the 100 s state TTL has passed: the link is gone
              .add_elements([TimestampedValue(row(2), 510)])
              .advance_watermark_to_infinity())
    with streaming() as p:
        out = p | stream | DedupAndResolve(dedup_window_s=60, state_ttl_s=100)
        assert_that(out.rows | beam.FlatMap(_resolved),
                    equal_to([(1, "u1"), (2, "a1")]))


# -- dedup as a function, and the batch forms (backfills) ---------------------------------

def test_is_copy_remembers_ids_for_the_window_only():
    seen: OrderedDict[str, int] = OrderedDict()
    assert not is_copy(seen, "e1", 100, 50)
    assert not is_copy(seen, "e2", 120, 50)
    assert is_copy(seen, "e1", 140, 50)       # within 50 of its arrival
    assert not is_copy(seen, "e1", 151, 50)   # forgotten: a new arrival
    assert list(seen) == ["e2", "e1"]         # e2 (120) is still inside the window


def test_first_copies_keeps_the_earliest_received():
    first = {**row(1), "received_at": T0}
    later = {**row(1), "received_at": T0 + timedelta(seconds=5)}
    kept, dropped = first_copies([later, row(2), first])
    assert [r["event_id"].int for r in kept] == [1, 2] and kept[0] is first
    assert dropped == [later]


def test_batch_identity_resolves_in_event_time_order_whatever_the_file_order():
    rows = [row(3), row(5), row(2, user="u1"), row(1)]  # the identify is at t=2
    resolved, links = resolve_in_order(rows)
    assert [(r["event_id"].int, r["resolved_user_id"]) for r in resolved] == [
        (1, "a1"), (2, "u1"), (3, "u1"), (5, "u1")]
    assert [link["event_id"].int for link in links] == [2]
