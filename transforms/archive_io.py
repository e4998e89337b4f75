"""Read archived raw events for the backfill: the bytes the stream gets from Kafka.

``ReadRawEvents(glob, fmt)`` yields each record's raw envelope (or bare event) bytes,
unchanged, so the backfill feeds them to the same ``ParseEnvelopes`` as the stream:
- ``jsonl``: one event or collector envelope per line (``decode_envelope`` with
  ``bare_received_at`` tells them apart). Lines are bytes, never decoded here, so an
  invalid line becomes a parse bad row downstream. Elements carry no event time: the
  files have none to give.
- ``avro``: files of ``schemas/avro/raw_event.avsc`` written by ``pipelines/archive.py``;
  yields the ``envelope`` field timestamped with the archived Kafka record time, so
  event-time windows downstream see what the stream saw.
Globs may name any Beam filesystem (local, gs://, s3://, hdfs://). A glob that matches
nothing fails at construction ("No files found based on the file pattern ..."); an
unreadable file fails the pipeline with fastavro's error (which does not name the file:
Beam's Avro source splits files by blocks, and we keep that over a per-file reader); an
Avro record without envelope bytes (a file of another schema) is a bad row, never dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from transforms.results import BAD, bad_row

FORMATS = ("jsonl", "avro")
STAGE = "archive_read"


def archived_envelope(record: dict[str, Any]) -> tuple[bytes, Timestamp]:
    """(envelope bytes, Kafka record time) of one archived Avro record.

    Raises ``ValueError`` for a record that is not of the archive's schema.
    """
    envelope = record.get("envelope")
    if not isinstance(envelope, bytes):
        raise ValueError(f"record has no envelope bytes (fields: {sorted(record)})")
    ts = record.get("timestamp")
    if isinstance(ts, datetime):  # fastavro decodes timestamp-millis to aware datetimes
        return envelope, Timestamp.from_utc_datetime(ts)
    if isinstance(ts, int):  # a writer without the logical type
        return envelope, Timestamp(micros=ts * 1000)
    raise ValueError(f"record has no timestamp (got {type(ts).__name__})")


def _record_repr(record: dict[str, Any]) -> bytes:
    import json

    return json.dumps(record, default=repr, sort_keys=True).encode()


class _LineFn(beam.DoFn):
    def process(self, line: bytes):
        yield line


class _ArchivedEnvelopeFn(beam.DoFn):
    def process(self, record: dict[str, Any]):
        try:
            envelope, ts = archived_envelope(record)
        except ValueError as exc:
            yield beam.pvalue.TaggedOutput(BAD, bad_row(STAGE, "invalid_archive_record",
                                                        [str(exc)], _record_repr(record)))
            return
        yield TimestampedValue(envelope, ts)


class ReadRawEvents(beam.PTransform):
    """Files matching ``glob`` -> raw bytes (main output ``raw``) and bad rows (``BAD``).

    Both outputs exist for either format (``BAD`` stays empty for JSONL), so a job
    flattens ``BAD`` into its bad rows without caring which format it read.
    """

    def __init__(self, glob: str, fmt: str = "jsonl") -> None:
        super().__init__()
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        self._glob, self._fmt = glob, fmt

    def expand(self, pbegin):
        if self._fmt == "jsonl":
            lines = pbegin | "ReadLines" >> beam.io.ReadFromText(
                self._glob, coder=beam.coders.BytesCoder())
            # A pass-through step only to give both formats the same two outputs.
            return lines | "Lines" >> beam.ParDo(_LineFn()).with_outputs(BAD, main="raw")
        records = pbegin | "ReadAvro" >> beam.io.ReadFromAvro(self._glob)
        return records | "Envelopes" >> beam.ParDo(_ArchivedEnvelopeFn()).with_outputs(
            BAD, main="raw")
