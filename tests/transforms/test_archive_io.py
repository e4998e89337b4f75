"""Readers of archived raw events: JSONL lines and the archive's Avro files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import apache_beam as beam
import fastavro
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Timestamp

from pipelines.archive import Buffered, archive_path, avro_record, load_schema, write_avro_file
from tests.fixtures.events import envelope, event
from transforms.archive_io import ReadRawEvents, archived_envelope
from transforms.parse import ParseEnvelopes
from transforms.results import BAD

T0 = datetime(2026, 12, 4, 13, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


@pytest.mark.parametrize("record, expected", [
    ({"envelope": b"{}", "timestamp": T0}, (b"{}", Timestamp.from_utc_datetime(T0))),
    ({"envelope": b"x", "timestamp": T0_MS + 5}, (b"x", Timestamp(micros=(T0_MS + 5) * 1000))),
])
def test_archived_envelope_keeps_bytes_and_broker_time(record, expected):
    assert archived_envelope(record) == expected


@pytest.mark.parametrize("record, message", [
    ({"value": b"{}", "timestamp": T0}, "no envelope bytes"),
    ({"envelope": "text", "timestamp": T0}, "no envelope bytes"),
    ({"envelope": b"{}"}, "no timestamp"),
])
def test_records_of_another_schema_are_refused(record, message):
    with pytest.raises(ValueError, match=message):
        archived_envelope(record)


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="jsonl, avro"):
        ReadRawEvents("x", "csv")


def _with_time(raw, ts=beam.DoFn.TimestampParam):
    return raw, ts.micros // 1000


def _envelopes(n, start=0):
    return [envelope(event(event_id=f"00000000-0000-4000-8000-{i:012d}"),
                     received_at=T0) for i in range(start, start + n)]


def _archive(root: Path, partition: int, first_offset: int, values: list[bytes],
             name_ts_ms: int = T0_MS) -> list[tuple[bytes, int]]:
    """Write one archive file; returns (envelope, broker ms) per record."""
    recs = [Buffered(first_offset + i, name_ts_ms + i * 1000, b"k", v)
            for i, v in enumerate(values)]
    write_avro_file(archive_path(str(root), name_ts_ms, partition, first_offset), load_schema(),
                    [avro_record("radix.events.raw", partition, r) for r in recs])
    return [(r.value, r.timestamp_ms) for r in recs]


def test_avro_round_trip_is_byte_identical_and_timestamped_by_the_broker(tmp_path):
    invalid = b"{\"v\":1, not json \xff"  # archived verbatim, judged by parse later
    expected = (_archive(tmp_path, 0, 10, [*_envelopes(3), invalid])
                + _archive(tmp_path, 1, 0, _envelopes(2, 3), T0_MS + 3_600_000))
    with TestPipeline(runner="FnApiRunner") as p:
        read = p | ReadRawEvents(f"{tmp_path}/dt=*/hour=*/*.avro", "avro")
        assert_that(read.raw | beam.Map(_with_time), equal_to(expected))
        assert_that(read[BAD], equal_to([]), label="NoBadRows")


def test_avro_read_feeds_parse_like_the_stream(tmp_path):
    _archive(tmp_path, 0, 0, [*_envelopes(2), b"{oops"])
    with TestPipeline(runner="FnApiRunner") as p:
        parsed = (p | ReadRawEvents(f"{tmp_path}/**/*.avro", "avro")).raw | ParseEnvelopes()
        assert_that(parsed.envelopes | beam.Map(lambda e: e["event"]["event_id"]),
                    equal_to([f"00000000-0000-4000-8000-{i:012d}" for i in range(2)]))
        assert_that(parsed[BAD] | beam.Map(lambda b: b["failure"]["type"]),
                    equal_to(["invalid_json"]), label="Bad")


def test_avro_records_of_another_schema_become_bad_rows(tmp_path):
    schema = fastavro.parse_schema({"type": "record", "name": "Other",
                                    "fields": [{"name": "value", "type": "bytes"}]})
    with open(tmp_path / "other.avro", "wb") as fh:
        fastavro.writer(fh, schema, [{"value": b"{}"}, {"value": b"[]"}])
    with TestPipeline(runner="FnApiRunner") as p:
        read = p | ReadRawEvents(str(tmp_path / "*.avro"), "avro")
        assert_that(read.raw, equal_to([]))
        assert_that(read[BAD] | beam.Map(lambda b: (b["stage"], b["failure"]["type"])),
                    equal_to([("archive_read", "invalid_archive_record")] * 2), label="Bad")


def test_corrupt_avro_file_fails_the_pipeline(tmp_path):
    good = _archive(tmp_path, 0, 0, _envelopes(1))
    assert good
    (tmp_path / "dt=2026-12-04" / "hour=13" / "broken.avro").write_bytes(b"Obj\x01garbage")
    with (pytest.raises(ValueError, match="is it an avro file"),
          TestPipeline(runner="FnApiRunner") as p):
        p | ReadRawEvents(f"{tmp_path}/dt=*/hour=*/*.avro", "avro")


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_a_glob_matching_nothing_is_an_error(tmp_path, fmt):
    with (pytest.raises(OSError, match="No files found"),
          TestPipeline(runner="FnApiRunner") as p):
        p | ReadRawEvents(str(tmp_path / "nothing-*.x"), fmt)


def test_jsonl_lines_come_out_as_the_bytes_in_the_file(tmp_path):
    env, bare = envelope(event()), b'{"event_id": "e", "event_name": "x"}'
    odd = b"not json \xff\xfe"  # invalid UTF-8 is not decoded here, parse judges it
    (tmp_path / "a.jsonl").write_bytes(env + b"\n" + bare + b"\r\n")
    (tmp_path / "b.jsonl").write_bytes(odd + b"\n")
    with TestPipeline(runner="FnApiRunner") as p:
        read = p | ReadRawEvents(str(tmp_path / "*.jsonl"), "jsonl")
        assert_that(read.raw, equal_to([env, bare, odd]))
        assert_that(read[BAD], equal_to([]), label="NoBadRows")
