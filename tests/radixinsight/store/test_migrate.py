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


@pytest.mark.integration
def test_session_aggregates_across_two_inserts(embedded_client):
    migrate(embedded_client)
    embedded_client.insert("events", [_event("page_view", 0, "/home", user=""),
                                      _event("click", 1)], column_names=_COLS)
    embedded_client.insert("events", [_event("page_view", 5, "/pricing"),
                                      _event("page_view", 9, "/signup")], column_names=_COLS)
    rows = embedded_client.query(
        "SELECT resolved_user_id, session_start, session_end, duration_s, event_count, "
        "pageview_count, unique_event_names, unique_pages, entry_page, exit_page "
        "FROM session_summary WHERE project_id = 'p1'").result_rows
    assert rows == [("u1", _NOW, _NOW + dt.timedelta(minutes=9), 540, 4, 3, 2, 3,
                     "/home", "/signup")]


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
