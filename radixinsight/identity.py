"""Operator actions on identity links (``radixinsight identity ...``)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from transforms.identity import IDENTITY_COLUMNS


def unlink(client: Client, project_id: str, anonymous_id: str, user_id: str) -> None:
    """Mark the link removed; ``identity_map`` (and every query through it) follows at once.

    Versioned by wall clock, so it outranks the pipeline's row for the same pair; a later
    identify of that browser by that user links it again.
    """
    found = client.query(
        "SELECT count() FROM identities FINAL WHERE project_id = {p:String} "
        "AND anonymous_id = {a:String} AND user_id = {u:String}",
        parameters={"p": project_id, "a": anonymous_id, "u": user_id}).result_rows[0][0]
    if not found:
        raise ValueError(f"no link between {anonymous_id!r} and {user_id!r} in {project_id!r}")
    now = datetime.now(UTC)
    client.insert("identities", [[project_id, anonymous_id, user_id, "unlinked", now,
                                  uuid.UUID(int=0), "cli", time.time_ns() // 1_000_000]],
                  column_names=list(IDENTITY_COLUMNS))


def list_links(client: Client, project_id: str, *, anonymous_id: str | None = None,
               user_id: str | None = None) -> list[tuple[Any, ...]]:
    where, params = ["project_id = {p:String}"], {"p": project_id}
    if anonymous_id:
        where.append("anonymous_id = {a:String}")
        params["a"] = anonymous_id
    if user_id:
        where.append("user_id = {u:String}")
        params["u"] = user_id
    return client.query(
        "SELECT anonymous_id, user_id, status, linked_at, event_id, source "
        f"FROM identities FINAL WHERE {' AND '.join(where)} ORDER BY anonymous_id, linked_at",
        parameters=params).result_rows
