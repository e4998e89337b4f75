"""Identity resolution: link anonymous browsers to identified users.

An event carrying both ``anonymous_id`` and ``user_id`` (an identify) links the two.
The link is recorded in ``identities`` with the event that caused it; history is not
rewritten: earlier anonymous events resolve to the user at query time through the
``identity_map`` view (see schemas/clickhouse/0008_identities.sql), and an unlink
(``radixinsight identity unlink``) takes effect there too.

Each event gets ``resolved_user_id``: its own ``user_id``, else the user its
anonymous id is linked to (in the stream, per-browser state kept by
``transforms/browser_state.py``), else the anonymous id. An anonymous id is never
merged into a second identified user automatically: the first link stands and the
second pair is recorded with status ``conflict``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

LINKS = "links"  # tagged output: rows for the ``identities`` table
DEFAULT_STATE_TTL_S = 30 * 24 * 3600
IDENTITY_COLUMNS = ("project_id", "anonymous_id", "user_id", "status", "linked_at", "event_id",
                    "source", "version")


def identity_key(row: dict[str, Any]) -> tuple[str, str]:
    """Events of one browser (or, without an anonymous id, of one user) share a key."""
    anon = row.get("anonymous_id") or ""
    return row["project_id"], anon if anon else "user:" + (row.get("user_id") or "")


def link_row(row: dict[str, Any], status: str) -> dict[str, Any]:
    ts: datetime = row["timestamp"]
    return {"project_id": row["project_id"], "anonymous_id": row["anonymous_id"],
            "user_id": row["user_id"], "status": status, "linked_at": ts,
            "event_id": row["event_id"], "source": "pipeline",
            # Versioned by event time; an unlink is versioned by wall clock, so a
            # replayed old event never undoes it, while a newer identify does.
            "version": int(ts.timestamp() * 1000)}


def resolve(row: dict[str, Any], linked: str | None
            ) -> tuple[str, dict[str, Any] | None, str | None]:
    """``(resolved_user_id, link row or None, link to remember)`` for one event."""
    user, anon = row.get("user_id") or "", row.get("anonymous_id") or ""
    if user and anon:
        if linked is None:
            return user, link_row(row, "linked"), user
        if linked != user:
            return user, link_row(row, "conflict"), linked
        return user, None, linked
    if user:
        return user, None, linked
    return linked or anon, None, linked


def resolve_in_order(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                        list[dict[str, Any]]]:
    """One browser's events in event-time order -> (resolved rows, link rows)."""
    linked, out, links = None, [], []
    for row in sorted(rows, key=lambda r: r["timestamp"]):
        resolved, link, linked = resolve(row, linked)
        out.append({**row, "resolved_user_id": resolved})
        if link is not None:
            links.append(link)
    return out, links
