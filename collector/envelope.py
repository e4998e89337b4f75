"""The Kafka record the collector writes for each accepted event.

Value: a JSON object ``{"v": 1, "received_at", "project_id", "key_id", "ip",
"user_agent", "sent_at", "event"}``; ``event`` is the producer's event, untouched.
Key: ``project_id:user_id-or-anonymous_id`` so one user's events share a partition
and stay in order.

The collector serialises each event once (its size is checked on those bytes) and
splices it into a head shared by the whole request: ``envelope_head`` + ``wrap``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

ENVELOPE_VERSION = 1


def who(event: dict[str, Any]) -> str:
    """The event's user id, else its anonymous id, else ''."""
    user = event.get("user")
    if not isinstance(user, dict):
        return ""
    ident = user.get("user_id") or user.get("anonymous_id")
    return str(ident) if isinstance(ident, str | int | float) and ident is not True else ""


def record_key(project_id: str, event: dict[str, Any]) -> bytes:
    return f"{project_id}:{who(event)}".encode()


def envelope_head(*, project_id: str, key_id: str | None, ip: str | None,
                  user_agent: str | None, received_at: datetime | None = None) -> bytes:
    """The envelope's fields known per request, as an unclosed JSON object."""
    return orjson.dumps({
        "v": ENVELOPE_VERSION,
        "received_at": (received_at or datetime.now(UTC)).isoformat(timespec="milliseconds"),
        "project_id": project_id,
        "key_id": key_id,
        "ip": ip,
        "user_agent": user_agent,
    })[:-1]


def wrap(head: bytes, event_json: bytes, sent_at: Any) -> bytes:
    """Close ``head`` around one serialised event: the record value."""
    sent = orjson.dumps(sent_at) if isinstance(sent_at, str) else b"null"
    return b"".join((head, b',"sent_at":', sent, b',"event":', event_json, b"}"))


def make_envelope(event: dict[str, Any], *, project_id: str, key_id: str | None,
                  ip: str | None, user_agent: str | None, sent_at: str | None = None,
                  received_at: datetime | None = None) -> bytes:
    """Serialise one accepted event with what only the collector knows."""
    head = envelope_head(project_id=project_id, key_id=key_id, ip=ip, user_agent=user_agent,
                         received_at=received_at)
    return wrap(head, orjson.dumps(event), sent_at)
