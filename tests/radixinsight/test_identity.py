"""``radixinsight identity unlink|list`` on the real (served) store."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from radixinsight.cli import main
from radixinsight.store import connect
from radixinsight.store.migrate import migrate
from transforms.identity import IDENTITY_COLUMNS


@pytest.fixture
def store(store_server_url):
    database = f"ident_{uuid.uuid4().hex[:8]}"
    connect(store_server_url).command(f"CREATE DATABASE {database}")
    url = f"{store_server_url}/{database}"
    client = connect(url)
    migrate(client)
    now = datetime.now(UTC)
    client.insert("identities", [["p1", "a1", "u1", "linked", now, uuid.uuid4(), "pipeline", 1]],
                  column_names=list(IDENTITY_COLUMNS))
    client.insert("events", [[uuid.uuid4(), "page_view", "p1", now, "a1", ""]],
                  column_names=["event_id", "event_name", "project_id", "timestamp",
                                "anonymous_id", "user_id"])
    return url, client


@pytest.mark.integration
def test_unlink_is_followed_by_queries_and_listed(store, capsys):
    url, client = store
    assert client.command("SELECT person_id FROM events_resolved") == "u1"
    assert main(["identity", "unlink", "--project", "p1", "--anonymous-id", "a1",
                 "--user", "u1", "--store", url]) == 0
    assert client.command("SELECT person_id FROM events_resolved") == "a1"
    assert main(["identity", "list", "--project", "p1", "--user", "u1", "--store", url]) == 0
    listed = capsys.readouterr().out
    assert "unlinked" in listed and "cli" in listed


@pytest.mark.integration
def test_unlinking_an_unknown_pair_is_a_clear_error(store, capsys):
    url, _ = store
    assert main(["identity", "unlink", "--project", "p1", "--anonymous-id", "a1",
                 "--user", "nobody", "--store", url]) == 1
    assert "no link between 'a1' and 'nobody'" in capsys.readouterr().err
