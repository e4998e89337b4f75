"""Decode collector envelopes: JSON and shape only; the event is judged by validate."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import orjson

from transforms.results import BAD, bad_row, with_source

STAGE = "parse"


class ParseError(ValueError):
    """An input that cannot become an event; carries a stable failure type."""

    def __init__(self, failure_type: str, messages: list[str],
                 partial: dict[str, Any] | None = None) -> None:
        super().__init__("; ".join(messages))
        self.failure_type, self.messages, self.partial = failure_type, messages, partial or {}


def decode_envelope(raw: bytes, bare_received_at: str | None = None) -> dict[str, Any]:
    """Bytes from ``radix.events.raw`` to the envelope dict (``event`` is an object).

    With ``bare_received_at`` (files of events, not of envelopes), an object that is not
    an envelope is taken as a bare event and wrapped, received at that time.
    """
    try:
        env = orjson.loads(raw)  # rejects invalid UTF-8, NaN/Infinity, nesting > 1024
    except orjson.JSONDecodeError as exc:
        raise ParseError("invalid_json", [f"envelope is not JSON: {exc}"]) from exc
    if bare_received_at is not None and isinstance(env, dict) and not (
            "v" in env and "event" in env):
        env = {"v": 1, "received_at": bare_received_at, "event": env}
    if not isinstance(env, dict) or not isinstance(env.get("event"), dict):
        raise ParseError("invalid_envelope", ["envelope has no event object"])
    return env


def parse_bad_row(exc: ParseError, raw: bytes) -> dict[str, Any]:
    return bad_row(STAGE, exc.failure_type, exc.messages, raw, exc.partial)


class _DecodeFn(beam.DoFn):
    def __init__(self, bare_received_at: str | None) -> None:
        self._bare_received_at = bare_received_at

    def process(self, raw: Any):
        src = None
        if not isinstance(raw, bytes | str):  # a KafkaRecord: keep its position
            src, raw = (raw.topic, raw.partition, raw.offset), raw.value
        try:
            yield with_source(decode_envelope(raw, self._bare_received_at), src)
        except ParseError as exc:
            yield beam.pvalue.TaggedOutput(BAD, with_source(parse_bad_row(exc, raw), src))


class ParseEnvelopes(beam.PTransform):
    """bytes (or KafkaRecords, whose position is kept) -> envelope dicts (main output
    ``envelopes``) and bad rows (``BAD``).

    ``bare_received_at``: also accept bare events (see ``decode_envelope``).
    """

    def __init__(self, bare_received_at: str | None = None) -> None:
        super().__init__()
        self._bare_received_at = bare_received_at

    def expand(self, raw):
        return raw | "Decode" >> beam.ParDo(_DecodeFn(self._bare_received_at)).with_outputs(
            BAD, main="envelopes")
