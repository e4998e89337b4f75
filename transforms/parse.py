"""Decode collector envelopes: JSON and shape only; the event is judged by validate."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import orjson

from transforms.results import BAD, bad_row

STAGE = "parse"


class ParseError(ValueError):
    """An input that cannot become an event; carries a stable failure type."""

    def __init__(self, failure_type: str, messages: list[str],
                 partial: dict[str, Any] | None = None) -> None:
        super().__init__("; ".join(messages))
        self.failure_type, self.messages, self.partial = failure_type, messages, partial or {}


def decode_envelope(raw: bytes) -> dict[str, Any]:
    """Bytes from ``radix.events.raw`` to the envelope dict (``event`` is an object)."""
    try:
        env = orjson.loads(raw)  # rejects invalid UTF-8, NaN/Infinity, nesting > 1024
    except orjson.JSONDecodeError as exc:
        raise ParseError("invalid_json", [f"envelope is not JSON: {exc}"]) from exc
    if not isinstance(env, dict) or not isinstance(env.get("event"), dict):
        raise ParseError("invalid_envelope", ["envelope has no event object"])
    return env


class _DecodeFn(beam.DoFn):
    def process(self, raw: bytes):
        try:
            yield decode_envelope(raw)
        except ParseError as exc:
            yield beam.pvalue.TaggedOutput(
                BAD, bad_row(STAGE, exc.failure_type, exc.messages, raw, exc.partial))


class ParseEnvelopes(beam.PTransform):
    """bytes -> envelope dicts (main output ``envelopes``) and bad rows (``BAD``)."""

    def expand(self, raw):
        return raw | "Decode" >> beam.ParDo(_DecodeFn()).with_outputs(BAD, main="envelopes")
