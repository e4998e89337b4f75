"""The one result vocabulary of every transform: ok, or a dead-lettered bad row.

A bad row is the versioned record of ARCHITECTURE.md ("Bad rows"). Transforms emit
them on the ``BAD`` tagged output; jobs flatten every such output into one stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

BAD = "bad"  # tag of the dead-letter output of every transform
# A row's Kafka position (topic, partition, offset) in the stream; not a column. Carried
# from the reader to the sinks so offsets are committed only once stored (offsets.py).
SRC = "_src"
BAD_ROW_SCHEMA_VERSION = 1
PROCESSOR_NAME = "radixinsight"


def processor_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("radixinsight")
    except PackageNotFoundError:
        return "0+unknown"


def bad_row(stage: str, failure_type: str, messages: list[str], payload_raw: bytes | str,
            partial_event: dict[str, Any] | None = None,
            received_at: datetime | None = None) -> dict[str, Any]:
    """Build a bad row; ``payload_raw`` is kept verbatim (bytes decoded with replacement)."""
    if isinstance(payload_raw, bytes):
        payload_raw = payload_raw.decode("utf-8", errors="replace")
    return {
        "schema_version": BAD_ROW_SCHEMA_VERSION,
        "processor": {"name": PROCESSOR_NAME, "version": processor_version()},
        "stage": stage,
        "failure": {"type": failure_type, "messages": list(messages)},
        "payload_raw": payload_raw,
        "partial_event": partial_event or {},
        "received_at": (received_at or datetime.now(UTC)).isoformat(),
    }


def bad_row_to_json(row: dict[str, Any]) -> bytes:
    return json.dumps(row, separators=(",", ":"), default=str).encode()


def source_of(element: Any) -> tuple[str, int, int] | None:
    return element.get(SRC) if isinstance(element, dict) else None


def with_source(row: dict[str, Any], src: tuple[str, int, int] | None) -> dict[str, Any]:
    """``row`` carrying ``src``; rows of batch jobs have none and stay as they are."""
    if src is not None:
        row[SRC] = src
    return row


def without_source(d: Mapping[str, Any]) -> dict[str, Any]:
    """The element as it came in, for a bad row's payload: no stream position."""
    return {k: v for k, v in d.items() if k != SRC}
