"""From request body bytes to a list of event objects, within the limits (pure functions).

Accepted: ``application/json`` or ``text/plain`` (what ``navigator.sendBeacon`` sends
for a string), UTF-8, optionally ``Content-Encoding: gzip``; a JSON array of event
objects or one event object. The size limits apply to the body as received and again
after decompression, so a small gzip bomb is refused without being inflated.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson

from collector.errors import RejectedError, malformed, too_large

ACCEPTED_MEDIA_TYPES = ("application/json", "text/plain")


def check_content_type(value: str | None) -> None:
    """415 unless JSON or text/plain, in UTF-8 (the only charset JSON may use)."""
    mime, _, params = (value or "").partition(";")
    if mime.strip().lower() not in ACCEPTED_MEDIA_TYPES:
        raise RejectedError(415, "unsupported_media_type",
                        f"Content-Type {value!r} not accepted: send application/json, "
                        "or text/plain (navigator.sendBeacon)")
    for param in params.split(";"):
        name, _, charset = param.partition("=")
        if name.strip().lower() == "charset" and \
                charset.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise RejectedError(415, "unsupported_media_type",
                            f"charset {charset.strip()!r} not accepted: send UTF-8")


def is_gzip(content_encoding: str | None) -> bool:
    """Whether the body is gzip; 415 for any coding other than gzip or identity."""
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("gzip", "x-gzip"):
        return True
    if coding in ("identity", ""):
        return False
    raise RejectedError(415, "unsupported_media_type",
                    f"Content-Encoding {content_encoding!r} not accepted: send gzip or none")


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate every gzip member of ``data``, refusing to produce more than ``limit`` bytes."""
    out: list[bytes] = []
    total = 0
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(data, limit - total + 1)
        except zlib.error as exc:
            raise malformed(f"gzip body is corrupt: {exc}") from None
        total += len(chunk)
        if total > limit:
            raise too_large(f"body inflates to more than {limit} bytes")
        out.append(chunk)
        if not inflater.eof:
            raise malformed("gzip body is truncated")
        data = inflater.unused_data
        if not data:
            return b"".join(out)


def decode_body(raw: bytes, gzipped: bool, *, max_body_bytes: int, max_batch_bytes: int) -> bytes:
    if len(raw) > max_body_bytes:
        raise too_large(f"body larger than {max_body_bytes} bytes")
    body = gunzip(raw, max_batch_bytes) if gzipped else raw
    if len(body) > max_batch_bytes:
        raise too_large(f"batch larger than {max_batch_bytes} bytes")
    return body


def parse_events(body: bytes, max_batch_events: int) -> list[dict[str, Any]]:
    """A JSON array of event objects, or one event object; 400/413 otherwise."""
    try:
        doc = orjson.loads(body)  # also rejects invalid UTF-8 and lone surrogates
    except orjson.JSONDecodeError as exc:
        raise malformed(f"body is not valid UTF-8 JSON: {exc}") from None
    if isinstance(doc, dict):
        return [doc]
    if not isinstance(doc, list):
        raise malformed("body must be a JSON array of events or one event object")
    if not doc:
        raise malformed("body is an empty array: no events")
    if len(doc) > max_batch_events:
        raise too_large(f"batch of {len(doc)} events; at most {max_batch_events} per request",
                        events=len(doc))
    for i, event in enumerate(doc):
        if not isinstance(event, dict):
            raise RejectedError(400, "malformed", f"event {i} is not a JSON object",
                                events=len(doc))
    return doc
