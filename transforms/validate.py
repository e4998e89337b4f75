"""Validate an envelope's event and flatten it into an ``events`` row.

Rules (the design's 3.3, as ARCHITECTURE.md fixes them): the JSON Schema in
``schemas/event.schema.json``; a UUID ``event_id``; an ISO 8601 ``timestamp`` with an
offset; a known project; at most 100 KB; a user key (``user_id`` or ``anonymous_id``);
per-project JSON Schemas for the properties of an event name. Every failure is a
``ValidationError`` with a stable type and all the messages found, never another
exception. Timestamps too far in the future are corrected from the collector's
``received_at`` and the SDK's ``sent_at`` (as PostHog and Segment do), and the
correction is recorded (``client_timestamp``, ``timestamp_corrected``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import apache_beam as beam
import orjson

from collector.projects import Project
from transforms.event_types import categorize
from transforms.results import BAD, bad_row, source_of, with_source, without_source

STAGE = "validate"
EVENT_SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "event.schema.json"


class ValidationError(ValueError):
    def __init__(self, failure_type: str, messages: list[str],
                 partial: dict[str, Any] | None = None) -> None:
        super().__init__("; ".join(messages))
        self.failure_type, self.messages, self.partial = failure_type, messages, partial or {}


@dataclass(frozen=True)
class ValidateConfig:
    # None accepts every project (``radixinsight enrich`` without a registry says so).
    projects: Mapping[str, Project] | None = None
    max_event_bytes: int = 100 * 1024
    max_future_skew_s: float = 600.0
    event_schema: Mapping[str, Any] = field(
        default_factory=lambda: json.loads(EVENT_SCHEMA_PATH.read_text()))

    def __post_init__(self) -> None:
        if self.max_event_bytes <= 0 or self.max_future_skew_s < 0:
            raise ValueError("max_event_bytes must be > 0 and max_future_skew_s >= 0")


# Compiled validators by schema object. The entry keeps the schema alive, so its id
# cannot be reused; configs live as long as their workers, so this stays small.
_VALIDATORS: dict[int, tuple[Any, Callable[[Any], Any]]] = {}


def _validator(schema: Mapping[str, Any]) -> Callable[[Any], Any]:
    """fastjsonschema compiles a schema to Python code (~5 µs per event); once per worker."""
    hit = _VALIDATORS.get(id(schema))
    if hit is None:
        import fastjsonschema

        hit = _VALIDATORS[id(schema)] = (schema, fastjsonschema.compile(dict(schema)))
    return hit[1]


def _schema_errors(schema: Mapping[str, Any], value: Any) -> list[str]:
    from fastjsonschema import JsonSchemaValueException

    try:
        _validator(schema)(value)
    except JsonSchemaValueException as exc:
        return [exc.message]
    return []


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 with an offset (or Z), to an aware UTC datetime."""
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be an ISO 8601 string, got {type(value).__name__}")
    ts = datetime.fromisoformat(value)
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return ts.astimezone(UTC)


def _optional_time(value: Any) -> datetime | None:
    try:
        return parse_timestamp(value)
    except (ValueError, OverflowError):
        return None


def corrected_timestamp(timestamp: datetime, received_at: datetime, sent_at: datetime | None,
                        max_skew_s: float) -> datetime:
    """The event time to store: ``timestamp`` unless it is too far in the future.

    A future timestamp means the client clock is ahead; the SDK's ``sent_at`` (same
    clock) tells by how much: event time = received_at - (sent_at - timestamp).
    """
    if timestamp - received_at <= timedelta(seconds=max_skew_s):
        return timestamp
    if sent_at is not None:
        fixed = received_at - (sent_at - timestamp)
        if fixed <= received_at + timedelta(seconds=max_skew_s):
            return fixed
    return received_at


def _obj(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def user_ids(event: Mapping[str, Any]) -> tuple[str, str]:
    """``(user_id, anonymous_id)`` of an event as its row will carry them ("" if absent)."""
    user = _obj(event, "user")
    return _str(user, "user_id"), _str(user, "anonymous_id")


def validate_envelope(env: Mapping[str, Any], cfg: ValidateConfig) -> dict[str, Any]:
    """One envelope to one ``events`` row, or ``ValidationError``."""
    event = env.get("event")
    if not isinstance(event, dict):
        raise ValidationError("invalid_envelope", ["envelope has no event object"])
    schema_errors = _schema_errors(cfg.event_schema, event)
    if schema_errors:
        raise ValidationError("schema_violation", schema_errors, event)
    size = len(orjson.dumps(event))
    if size > cfg.max_event_bytes:
        raise ValidationError("event_too_large",
                              [f"event is {size} bytes, more than {cfg.max_event_bytes}"],
                              {k: event.get(k) for k in ("event_id", "event_name", "project_id")})

    errors: list[tuple[str, str]] = []
    try:
        event_id = uuid.UUID(event["event_id"])
        if str(event_id) != event["event_id"].lower():  # only the canonical 8-4-4-4-12 form
            raise ValueError(event["event_id"])
    except ValueError:
        errors.append(("invalid_event_id", f"event_id {event['event_id']!r} is not a UUID"))
    try:
        timestamp = parse_timestamp(event["timestamp"])
    except (ValueError, OverflowError) as exc:
        errors.append(("invalid_timestamp", str(exc)))
    project = None
    if cfg.projects is not None:
        project = cfg.projects.get(event["project_id"])
        if project is None:
            errors.append(("unknown_project", f"project {event['project_id']!r} is not registered"))
    user = _obj(event, "user")
    user_id, anonymous_id = user_ids(event)
    if not (user_id or anonymous_id):
        errors.append(("missing_user", "user.user_id or user.anonymous_id is required"))
    props = event.get("properties") or {}
    schema = project.property_schemas.get(event["event_name"]) if project else None
    if schema is not None:
        errors += [("property_schema_violation", f"properties: {m}")
                   for m in _schema_errors(schema, props)]
    if errors:
        raise ValidationError(errors[0][0], [m for _, m in errors], event)

    received_at = _optional_time(env.get("received_at")) or datetime.now(UTC)
    sent_at = _optional_time(env.get("sent_at") or event.get("sent_at"))
    stored_ts = corrected_timestamp(timestamp, received_at, sent_at, cfg.max_future_skew_s)
    context = _obj(event, "context")
    page, app = _obj(context, "page"), _obj(context, "app")
    page_url = _str(page, "url")
    return {
        "event_id": event_id,
        "event_name": event["event_name"],
        "event_type": categorize(event["event_name"], project.event_types if project else None),
        "project_id": event["project_id"],
        "timestamp": stored_ts,
        "client_timestamp": timestamp,
        "timestamp_corrected": int(stored_ts != timestamp),
        "received_at": received_at,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "session_id": _str(user, "session_id"),
        "resolved_user_id": user_id or anonymous_id,
        "ip_address": _str(context, "ip") or _str(env, "ip"),
        "user_agent": _str(context, "user_agent") or _str(env, "user_agent"),
        "locale": _str(context, "locale"),
        "timezone": _str(context, "timezone"),
        "page_url": page_url,
        "page_path": _url_path(page_url),
        "page_referrer": _str(page, "referrer"),
        "page_title": _str(page, "title"),
        "app_name": _str(app, "name"),
        "app_version": _str(app, "version"),
        "properties": orjson.dumps(props).decode(),
    }


def _url_path(url: str) -> str:
    try:
        return urlsplit(url).path if url else ""
    except ValueError:  # e.g. an invalid IPv6 literal
        return ""


def validate_bad_row(exc: ValidationError, env: Mapping[str, Any]) -> dict[str, Any]:
    return bad_row(STAGE, exc.failure_type, exc.messages, orjson.dumps(without_source(env)),
                   exc.partial,
                   _optional_time(env.get("received_at")))


class _ValidateFn(beam.DoFn):
    def __init__(self, cfg: ValidateConfig) -> None:
        self._cfg = cfg

    def process(self, env: dict[str, Any]):
        src = source_of(env)
        try:
            yield with_source(validate_envelope(env, self._cfg), src)
        except ValidationError as exc:
            yield beam.pvalue.TaggedOutput(BAD, with_source(validate_bad_row(exc, env), src))


class ValidateEvents(beam.PTransform):
    """envelopes -> event rows (main output ``rows``) and bad rows (``BAD``)."""

    def __init__(self, cfg: ValidateConfig | None = None) -> None:
        super().__init__()
        self._cfg = cfg or ValidateConfig()

    def expand(self, envelopes):
        return envelopes | "Validate" >> beam.ParDo(_ValidateFn(self._cfg)).with_outputs(
            BAD, main="rows")
