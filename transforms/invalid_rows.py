"""Bad rows (ARCHITECTURE.md "Bad rows") flattened to ``events_invalid`` columns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from transforms.results import bad_row_to_json, without_source

INVALID_COLUMNS = (
    "received_at", "project_id", "schema_version", "processor_name", "processor_version",
    "stage", "failure_type", "failure_messages", "payload_raw", "partial_event",
)


def invalid_row(bad: dict[str, Any]) -> dict[str, Any]:
    partial = bad.get("partial_event") or {}
    try:
        received_at = datetime.fromisoformat(bad["received_at"]).astimezone(UTC)
    except (KeyError, TypeError, ValueError):
        received_at = datetime.now(UTC)
    project = partial.get("project_id") if isinstance(partial, dict) else None
    return {
        "received_at": received_at,
        "project_id": project if isinstance(project, str) else "",
        "schema_version": str(bad["schema_version"]),
        "processor_name": bad["processor"]["name"],
        "processor_version": bad["processor"]["version"],
        "stage": bad["stage"],
        "failure_type": bad["failure"]["type"],
        "failure_messages": list(bad["failure"]["messages"]),
        "payload_raw": bad["payload_raw"],
        "partial_event": orjson.dumps(partial, default=str).decode(),
    }


def dlq_record(bad: dict[str, Any]) -> tuple[bytes, bytes]:
    """The dead-letter topic's record: keyed by project (when known), the bad row as JSON."""
    partial = bad.get("partial_event") or {}
    project = partial.get("project_id") if isinstance(partial, dict) else None
    return ((project if isinstance(project, str) else "").encode(),
            bad_row_to_json(without_source(bad)))
