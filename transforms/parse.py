"""Parse collector envelopes into flat event rows (the ``events`` columns).

This is the minimal parse of the foundation: JSON, required fields, timestamp.
Full validation (schema, registry, skew) and enrichment build on these rows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import apache_beam as beam
import orjson

from transforms.results import BAD, bad_row

STAGE = "parse"
REQUIRED = ("event_id", "event_name", "project_id", "timestamp")


class ParseError(ValueError):
    def __init__(self, failure_type: str, messages: list[str],
                 partial: dict[str, Any] | None = None) -> None:
        super().__init__("; ".join(messages))
        self.failure_type, self.messages, self.partial = failure_type, messages, partial or {}


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 with an offset (or Z), to an aware UTC datetime."""
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be an ISO 8601 string, got {type(value).__name__}")
    ts = datetime.fromisoformat(value)
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return ts.astimezone(UTC)


def _text(obj: Any, *path: str) -> str:
    for key in path:
        if not isinstance(obj, dict):
            return ""
        obj = obj.get(key)
    return obj if isinstance(obj, str) else ""


def envelope_to_row(raw: bytes) -> dict[str, Any]:
    """One envelope to one row; raises ParseError with a stable failure type."""
    try:
        env = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ParseError("invalid_json", [f"envelope is not JSON: {exc}"]) from exc
    event = env.get("event") if isinstance(env, dict) else None
    if not isinstance(event, dict):
        raise ParseError("invalid_envelope", ["envelope has no event object"])
    missing = [k for k in REQUIRED if event.get(k) in (None, "")]
    if missing:
        raise ParseError("missing_field", [f"missing required field {k!r}" for k in missing],
                         event)
    errors = []
    try:
        event_id = uuid.UUID(str(event["event_id"]))
    except ValueError:
        errors.append(f"event_id {event['event_id']!r} is not a UUID")
    try:
        timestamp = parse_timestamp(event["timestamp"])
    except ValueError as exc:
        errors.append(str(exc))
    try:
        received_at = parse_timestamp(env.get("received_at"))
    except ValueError:
        received_at = datetime.now(UTC)
    if errors:
        raise ParseError("invalid_field", errors, event)
    page_url = _text(event, "context", "page", "url")
    props = event.get("properties")
    user_id = _text(event, "user", "user_id")
    anonymous_id = _text(event, "user", "anonymous_id")
    return {
        "event_id": event_id,
        "event_name": str(event["event_name"]),
        "project_id": str(event["project_id"]),
        "timestamp": timestamp,
        "received_at": received_at,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "session_id": _text(event, "user", "session_id"),
        "resolved_user_id": user_id or anonymous_id,
        "ip_address": _text(event, "context", "ip") or (env.get("ip") or ""),
        "user_agent": _text(event, "context", "user_agent") or (env.get("user_agent") or ""),
        "locale": _text(event, "context", "locale"),
        "page_url": page_url,
        "page_path": urlsplit(page_url).path if page_url else "",
        "page_referrer": _text(event, "context", "page", "referrer"),
        "page_title": _text(event, "context", "page", "title"),
        "app_name": _text(event, "context", "app", "name"),
        "app_version": _text(event, "context", "app", "version"),
        "properties": orjson.dumps(props if isinstance(props, dict) else {}).decode(),
    }


class _ParseFn(beam.DoFn):
    def process(self, raw: bytes):
        try:
            yield envelope_to_row(raw)
        except ParseError as exc:
            yield beam.pvalue.TaggedOutput(
                BAD, bad_row(STAGE, exc.failure_type, exc.messages, raw, exc.partial))


class ParseEnvelopes(beam.PTransform):
    """bytes -> event rows (main output) and bad rows (``BAD`` output)."""

    def expand(self, raw):
        return raw | "Parse" >> beam.ParDo(_ParseFn()).with_outputs(BAD, main="rows")
