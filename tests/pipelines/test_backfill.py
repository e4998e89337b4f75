"""The backfill: archived events through the stream's transforms, batch, and reruns."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.backfill import run
from radixinsight.store import connect
from tests.fixtures.events import event

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _event(n: int, minutes: float, anon: str, user: str = "", name: str = "page_view") -> dict:
    return event(event_id=str(uuid.UUID(int=n)), event_name=name,
                 timestamp=(T0 + timedelta(minutes=minutes)).isoformat(),
                 user={"anonymous_id": anon, "user_id": user, "session_id": "sdk"})


def archive(path: Path) -> list[dict]:
    """Two browsers: a1 browses, identifies as u1, comes back after an hour; a2 bounces.
    One event is archived twice (a client retry) and one line is not JSON."""
    events = [_event(1, 0, "a1"), _event(2, 5, "a1", "u1", "signup_completed"),
              _event(3, 10, "a1"), _event(4, 80, "a1"), _event(5, 3, "a2")]
    lines = [json.dumps(e) for e in events] + [json.dumps(events[0]), "{not json"]
    path.write_text("\n".join(lines) + "\n")
    return events


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_backfill_to_files_runs_the_whole_chain(tmp_path):
    archive(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    counts = run([f"--input={tmp_path / 'in.jsonl'}", f"--output=jsonl:{out}"],
                 say=lambda *a, **k: None)
    assert counts["events_read"] == 7
    events = _lines(out / "events.jsonl")
    assert sorted(e["event_id"] for e in events) == [str(uuid.UUID(int=n)) for n in range(1, 6)]
    by_id = {e["event_id"]: e for e in events}
    # identity: a1's events after the identify resolve to u1; the one before stays a1 in
    # the stream (queries resolve it through identity_map)
    assert [by_id[str(uuid.UUID(int=n))]["resolved_user_id"] for n in (1, 2, 3, 4)] == [
        "a1", "u1", "u1", "u1"]
    assert [(i["anonymous_id"], i["user_id"], i["status"])
            for i in _lines(out / "identities.jsonl")] == [("a1", "u1", "linked")]
    sessions = sorted((s["session_key"], s["event_count"], s["is_bounce"], s["resolved_user_id"])
                      for s in _lines(out / "sessions.jsonl"))
    assert sessions == [("a1", 1, 1, "u1"), ("a1", 3, 0, "u1"), ("a2", 1, 1, "a2")]
    assert [b["failure"]["type"] for b in _lines(out / "events_invalid.jsonl")] == [
        "invalid_json"]
    assert counts.get("dedup.duplicates_dropped") == 1


@pytest.mark.integration
def test_rerunning_a_backfill_into_the_store_does_not_duplicate(tmp_path, store_server_url):
    events = archive(tmp_path / "in.jsonl")
    database = f"backfill_{uuid.uuid4().hex[:8]}"
    connect(store_server_url).command(f"CREATE DATABASE {database}")
    store = f"{store_server_url}/{database}"
    args = [f"--input={tmp_path / 'in.jsonl'}", "--output=store", f"--store={store}"]
    for _ in range(2):
        run(args, say=lambda *a, **k: None)
    client = connect(store)

    def one(sql: str):
        return client.query(sql).result_rows[0][0]

    assert one("SELECT count() FROM events FINAL") == len(events)
    assert one("SELECT uniqExact(event_id) FROM events") == len(events)
    assert one("SELECT count() FROM sessions FINAL") == 3
    assert one("SELECT count() FROM identities FINAL") == 1
    # the anonymous page view before the identify belongs to u1 at query time
    assert one(f"SELECT person_id FROM events_resolved WHERE event_id = '{uuid.UUID(int=1)}'") \
        == "u1"


@pytest.mark.integration
@pytest.mark.flink
def test_backfill_on_flink_gives_the_same_tables(tmp_path):
    events = archive(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    counts = run([f"--input={tmp_path / 'in.jsonl'}", f"--output=jsonl:{out}", "--runner=flink"],
                 say=lambda *a, **k: None)
    assert counts["events_read"] == 7
    assert sorted(e["event_id"] for e in _lines(out / "events.jsonl")) == sorted(
        e["event_id"] for e in events)
    assert len(_lines(out / "sessions.jsonl")) == 3
    assert len(_lines(out / "identities.jsonl")) == 1
