"""Funnels on the real ClickHouse engine (embedded chDB)."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from analytics.funnel import funnel, funnel_sql
from radixinsight.store.migrate import migrate

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
COLUMNS = ["event_id", "event_name", "project_id", "timestamp", "resolved_user_id",
           "anonymous_id"]


def rows(person, anon, steps):
    return [[uuid.uuid4(), name, "p", T0 + timedelta(minutes=i), person, anon]
            for i, name in enumerate(steps)]


@pytest.fixture
def events(embedded_client):
    migrate(embedded_client)
    data = (rows("u1", "a1", ["view", "start", "done"]) + rows("u2", "a2", ["view", "start"])
            + rows("u3", "a3", ["view"]) + rows("u4", "a4", ["start", "view"])  # wrong order
            + rows("u5", "a5", ["view", "done"]))  # skipped a step
    embedded_client.insert("events", [*data, data[0]], column_names=COLUMNS)  # + a duplicate
    return embedded_client


def test_funnel_counts_people_in_order(events):
    out = funnel(events, "p", ["view", "start", "done"])
    assert [s["users"] for s in out] == [5, 2, 1]
    assert out[1]["conversion"] == pytest.approx(0.4)


def test_funnel_window_excludes_slow_conversions(events):
    assert [s["users"] for s in funnel(events, "p", ["view", "start"], window_s=30)] == [5, 0]


def test_funnel_by_browser_follows_anonymous_id(embedded_client):
    migrate(embedded_client)
    data = [[uuid.uuid4(), "view", "p", T0, "a9", "a9"],
            [uuid.uuid4(), "signup", "p", T0 + timedelta(minutes=1), "user-9", "a9"]]
    embedded_client.insert("events", data, column_names=COLUMNS)
    by_user = funnel(embedded_client, "p", ["view", "signup"])
    by_browser = funnel(embedded_client, "p", ["view", "signup"], person="browser")
    assert [s["users"] for s in by_user] == [1, 0]
    assert [s["users"] for s in by_browser] == [1, 1]


@pytest.mark.parametrize("steps, person", [(["one"], "resolved_user_id"),
                                           (["a", "b"], "user_id; DROP TABLE events")])
def test_funnel_rejects_bad_arguments(steps, person):
    with pytest.raises(ValueError):
        funnel_sql(steps, 60, person)
