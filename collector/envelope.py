"""The Kafka record the collector writes for each accepted event.

Value: a JSON object ``{"v": 1, "received_at", "project_id", "key_id", "ip",
"user_agent", "sent_at", "event"}``; ``event`` is the producer's event, untouched.
Key: ``project_id:user_id-or-anonymous_id`` so one user's events share a partition
and stay in order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

ENVELOPE_VERSION = 1


def record_key(project_id: str, event: dict[str, Any]) -> bytes:
    user = event.get("user") if isinstance(event.get("user"), dict) else {}
    who = user.get("user_id") or user.get("anonymous_id") or ""
    return f"{project_id}:{who}".encode()


def make_envelope(event: dict[str, Any], *, project_id: str, key_id: str | None,
                  ip: str | None, user_agent: str | None, sent_at: str | None = None,
                  received_at: datetime | None = None) -> bytes:
    """Serialise one accepted event with what only the collector knows."""
    return orjson.dumps({
        "v": ENVELOPE_VERSION,
        "received_at": (received_at or datetime.now(UTC)).isoformat(timespec="milliseconds"),
        "project_id": project_id,
        "key_id": key_id,
        "ip": ip,
        "user_agent": user_agent,
        "sent_at": sent_at,
        "event": event,
    })
