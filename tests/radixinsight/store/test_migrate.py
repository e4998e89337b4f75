"""Migrations and the schema they build, on the embedded chDB store."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid

import pytest

from radixinsight.store.migrate import (
    MIGRATIONS_DIR,
    MigrationError,
    load_migrations,
    migrate,
    split_statements,
)

_NOW = dt.datetime.now(dt.UTC).replace(microsecond=0, tzinfo=None)  # inside the 90-day TTL
_COLS = ["event_id", "event_name", "event_type", "project_id", "timestamp", "received_at",
         "session_id", "resolved_user_id", "page_path"]


def _event(name: str, minutes: int, path: str = "", user: str = "u1",
           event_id: uuid.UUID | None = None) -> list:
    ts = _NOW + dt.timedelta(minutes=minutes)
    kind = "page" if name == "page_view" else "action"
    return [event_id or uuid.uuid4(), name, kind, "p1", ts, ts, "s1", user, path]


def test_split_statements_ignores_semicolons_in_quotes_and_comments():
    sql = "CREATE TABLE a (x String DEFAULT ';'); -- note; here\nSELECT 1;\n-- only a comment;\n"
    assert split_statements(sql) == ["CREATE TABLE a (x String DEFAULT ';')", "SELECT 1"]


def test_migration_files_are_numbered_in_order():
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions) and versions[0] == 1


@pytest.mark.integration
def test_applies_all_then_nothing(embedded_client):
    applied = migrate(embedded_client)
    assert applied == [m.filename for m in load_migrations()]
    assert migrate(embedded_client) == []
    tables = set(embedded_client.query("SHOW TABLES").result_columns[0])
    assert {"events", "events_invalid", "sessions", "event_counts_daily",
            "schema_migrations"} <= tables


@pytest.mark.integration
def test_changed_applied_file_is_refused(embedded_client, tmp_path):
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    migrate(embedded_client, directory)
    first = sorted(directory.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match=r"0001_.*changed after it was applied"):
        migrate(embedded_client, directory)


@pytest.mark.integration
def test_duplicate_event_id_counts_once_with_final(embedded_client):
    migrate(embedded_client)
    row = _event("signup", 0)
    # a replay that differs outside the key (re-enriched; an identical block would be
    # dropped on insert since 0007), so both copies are stored and FINAL collapses them
    replay = [*row[:5], row[5] + dt.timedelta(seconds=1), *row[6:]]
    embedded_client.insert("events", [row], column_names=_COLS)
    embedded_client.insert("events", [replay], column_names=_COLS)
    assert embedded_client.command("SELECT count() FROM events") == 2
    assert embedded_client.command("SELECT count() FROM events FINAL") == 1


_SESSION_COLS = ["project_id", "session_key", "session_id", "session_start", "session_end",
                 "event_count", "version", "is_deleted"]


@pytest.mark.integration
def test_sessions_final_shows_each_session_once_as_last_computed(embedded_client):
    migrate(embedded_client)
    start, later = _NOW, _NOW + dt.timedelta(minutes=40)
    embedded_client.insert("sessions", [
        ["p1", "a1", "s-early", start, start, 1, 1, 0],
        ["p1", "a1", "s-late", later, later, 1, 1, 0],
    ], column_names=_SESSION_COLS)
    # a late event bridged both: the early session grows, the late one is deleted
    embedded_client.insert("sessions", [
        ["p1", "a1", "s-early", start, later, 3, 2, 0],
        ["p1", "a1", "s-late", later, later, 1, 2, 1],
    ], column_names=_SESSION_COLS)
    rows = embedded_client.query(
        "SELECT session_id, event_count, duration_s FROM sessions FINAL").result_rows
    assert rows == [("s-early", 3, 0)]
    assert embedded_client.command("SELECT count() FROM sessions") == 4


@pytest.mark.integration
def test_identity_map_follows_links_unlinks_and_refuses_conflicts(embedded_client):
    migrate(embedded_client)
    cols = ["project_id", "anonymous_id", "user_id", "status", "linked_at", "event_id",
            "source", "version"]
    t = _NOW
    embedded_client.insert("identities", [
        ["p1", "a1", "u1", "linked", t, uuid.uuid4(), "pipeline", 1],
        ["p1", "a1", "u2", "conflict", t, uuid.uuid4(), "pipeline", 2],
        ["p1", "a2", "u3", "linked", t, uuid.uuid4(), "pipeline", 1],
    ], column_names=cols)
    embedded_client.insert("events", [_event("page_view", 0, user="")],
                           column_names=_COLS)
    embedded_client.command("ALTER TABLE events UPDATE anonymous_id = 'a1' WHERE 1")

    def person() -> str:
        return embedded_client.command("SELECT person_id FROM events_resolved")

    assert embedded_client.query("SELECT anonymous_id, user_id FROM identity_map "
                                 "ORDER BY anonymous_id").result_rows == [("a1", "u1"),
                                                                          ("a2", "u3")]
    assert person() == "u1"  # the anonymous event resolves through the link, unrewritten
    embedded_client.insert("identities", [["p1", "a1", "u1", "unlinked", t, uuid.uuid4(),
                                           "cli", 10]], column_names=cols)
    assert person() == "a1"  # unlinked: the conflict is not promoted


@pytest.mark.integration
def test_completeness_reads_the_latest_watermark(embedded_client):
    migrate(embedded_client)
    cols = ["project_id", "complete_until", "updated_at"]
    for minutes in (1, 3, 2):
        t = _NOW + dt.timedelta(minutes=minutes)
        embedded_client.insert("completeness", [["p1", t, t]], column_names=cols)
    assert embedded_client.command(
        "SELECT max(complete_until) FROM completeness WHERE project_id = 'p1'") == str(
        _NOW + dt.timedelta(minutes=3)) + ".000"


@pytest.mark.integration
def test_daily_counts_read_with_sum(embedded_client):
    migrate(embedded_client)
    for _ in range(2):
        embedded_client.insert("events", [_event("click", 0)], column_names=_COLS)
    assert embedded_client.command(
        "SELECT sum(event_count) FROM event_counts_daily WHERE event_name = 'click'") == 2


@pytest.mark.integration
def test_event_date_and_hour_default_from_timestamp(embedded_client):
    migrate(embedded_client)
    embedded_client.insert("events", [_event("click", 0)], column_names=_COLS)
    assert embedded_client.query("SELECT event_date, event_hour FROM events").result_rows == [
        (_NOW.date(), _NOW.hour)]
