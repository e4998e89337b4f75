"""The archive job: pure functions, and the windowed file writing under TestStream."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import fastavro
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_stream
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.transforms.window import TimestampedValue

from pipelines.archive import (
    ArchiveOptions,
    Buffered,
    WriteArchive,
    archive_path,
    avro_record,
    build,
    check_window,
    load_schema,
    pruning_fields,
    safe_commit_offset,
    split_due,
    window_start_ms,
    write_avro_file,
)
from tests.fixtures.events import envelope, event
from transforms.kafka_source import KafkaRecord

H = 3600 * 1000
T0 = int(datetime(2026, 12, 4, 13, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize("ts, window_s, start", [
    (T0, 3600, T0),
    (T0 + H - 1, 3600, T0),
    (T0 + H, 3600, T0 + H),
    (T0 + 7_499, 5, T0 + 5_000),
    (0, 10, 0),
])
def test_window_start_is_epoch_aligned(ts, window_s, start):
    assert window_start_ms(ts, window_s) == start


@pytest.mark.parametrize("bad", [0, -5, 7, 7200 * 5])
def test_windows_must_tile_a_day(bad):
    with pytest.raises(ValueError, match="divisor of 86400"):
        check_window(bad)


def test_archive_path_is_partitioned_by_day_and_hour_and_names_the_first_offset():
    path = archive_path("gs://bucket/raw", T0 + 5_000, 3, 1234)
    assert path == ("gs://bucket/raw/dt=2026-12-04/hour=13/"
                    "raw-20261204T130005Z-p0003-o000000001234.avro")


@pytest.mark.parametrize("raw, expected", [
    (envelope(event(), project_id="p9", received_at=datetime(2026, 12, 4, 13, 0, 0, 250000,
                                                              tzinfo=UTC)),
     (T0 + 250, "p9")),
    (b'{"received_at": "2026-12-04T13:00:00", "project_id": 7}', (T0, None)),  # naive = UTC
    (b'{"received_at": "yesterday", "project_id": "p"}', (None, "p")),
    (b"{not json", (None, None)),
    (b"[1, 2]", (None, None)),
])
def test_pruning_fields_are_copied_when_readable(raw, expected):
    assert pruning_fields(raw) == expected


def _buf(offset, ts, value=b"{}"):
    return Buffered(offset, ts, b"k", value)


def test_split_due_groups_closed_windows_in_offset_order():
    recs = [_buf(5, T0 + 10), _buf(3, T0 + 20), _buf(4, T0 + H + 1), _buf(6, T0 - 1)]
    due, rest = split_due(recs, T0 + H, 3600)
    assert {s: [r.offset for r in rs] for s, rs in due.items()} == {T0: [3, 5], T0 - H: [6]}
    assert [r.offset for r in rest] == [4]


@pytest.mark.parametrize("remaining, seen, expected", [
    ([], 41, 42),  # everything read is in a file
    ([_buf(17, 0), _buf(12, 0)], 41, 12),  # resume at the lowest offset not yet in a file
])
def test_commit_never_passes_a_buffered_record(remaining, seen, expected):
    assert safe_commit_offset(remaining, seen) == expected


def test_written_file_round_trips_and_leaves_no_temporary(tmp_path):
    path = archive_path(str(tmp_path), T0, 0, 7)
    recs = [avro_record("radix.events.raw", 0, _buf(7 + i, T0 + i, envelope(event())))
            for i in range(3)]
    size = write_avro_file(path, load_schema(), recs)
    assert size == Path(path).stat().st_size > 0
    with open(path, "rb") as fh:
        back = list(fastavro.reader(fh))
    assert [r["offset"] for r in back] == [7, 8, 9]
    assert [r["envelope"] for r in back] == [r["envelope"] for r in recs]
    assert back[0]["timestamp"] == datetime.fromtimestamp(T0 / 1000, UTC)
    assert back[0]["project_id"] == "p1" and back[0]["key"] == b"k"
    # a second write of the same name replaces the file
    write_avro_file(path, load_schema(), recs[:1])
    with open(path, "rb") as fh:
        assert len(list(fastavro.reader(fh))) == 1
    assert [p.name for p in Path(path).parent.iterdir()] == [Path(path).name]


def test_archive_options_have_units_and_defaults():
    opts = PipelineOptions([]).view_as(ArchiveOptions)
    assert (opts.file_window_s, opts.consumer_group, opts.codec) == (
        3600, "radixinsight-archive", "deflate")


# ---------------------------------------------------------------- TestStream

TOPIC = "radix.events.raw"
W = 10  # window, seconds


class FileCommitter:
    """Records commits in a file: the BundleBased runner may run DoFns on copies."""

    def __init__(self, path: str) -> None:
        self._path = path

    def __call__(self, topic: str, partition: int, next_offset: int) -> None:
        with open(self._path, "a") as fh:
            fh.write(json.dumps([topic, partition, next_offset]) + "\n")


def _rec(partition, offset, ts_s):
    value = envelope(event(event_id=f"00000000-0000-4000-8000-{partition:04d}{offset:08d}"),
                     received_at=datetime.fromtimestamp(ts_s, UTC))
    return TimestampedValue(KafkaRecord(TOPIC, partition, offset, int(ts_s * 1000),
                                        f"p1:u{offset}".encode(), value), ts_s)


def _stream():
    """Two partitions, windows [0, 10) and [10, 20); one record late for [0, 10)."""
    return (test_stream.TestStream()
            .add_elements([_rec(0, 0, 1), _rec(0, 1, 3), _rec(1, 0, 2), _rec(0, 2, 12)])
            .advance_watermark_to(10)
            .add_elements([_rec(1, 1, 15), _rec(0, 3, 4.5)])  # (0, 3) is late
            .advance_watermark_to(15)
            .add_elements([_rec(0, 4, 19)])
            .advance_watermark_to_infinity())


def _run_stream(out_dir: Path, commits: Path) -> None:
    opts = PipelineOptions([]).view_as(ArchiveOptions)
    opts.view_as(StandardOptions).streaming = True
    sink = WriteArchive(str(out_dir), W, commit=FileCommitter(str(commits)))
    with TestPipeline(runner="BundleBasedDirectRunner", options=opts) as p:
        build(p, _stream(), sink, opts)


def _read_tree(root: Path) -> dict[str, list[tuple[int, int]]]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                out[str(path.relative_to(root))] = [(r["partition"], r["offset"])
                                                    for r in fastavro.reader(fh)]
    return out


EXPECTED_FILES = {
    "dt=1970-01-01/hour=00/raw-19700101T000000Z-p0000-o000000000000.avro": [(0, 0), (0, 1)],
    "dt=1970-01-01/hour=00/raw-19700101T000000Z-p0001-o000000000000.avro": [(1, 0)],
    # the late record gets a file of its own in its window's directory
    "dt=1970-01-01/hour=00/raw-19700101T000000Z-p0000-o000000000003.avro": [(0, 3)],
    "dt=1970-01-01/hour=00/raw-19700101T000010Z-p0000-o000000000002.avro": [(0, 2), (0, 4)],
    "dt=1970-01-01/hour=00/raw-19700101T000010Z-p0001-o000000000001.avro": [(1, 1)],
}


def test_one_file_per_window_and_partition_and_late_records_kept(tmp_path):
    out, commits = tmp_path / "archive", tmp_path / "commits.jsonl"
    _run_stream(out, commits)
    # every file is complete (readable), named deterministically, no temporary left
    assert _read_tree(out) == EXPECTED_FILES
    got = [tuple(json.loads(line)) for line in commits.read_text().splitlines()]
    by_partition = {p: [o for t, pp, o in got if pp == p] for p in (0, 1)}
    # partition 0: after [0,10) the open record at offset 2 holds the commit back; the late
    # record's flush still cannot pass offset 2; [10,20) then releases everything read.
    assert by_partition[0] == [2, 2, 5]
    assert by_partition[1] == [1, 2]
    assert {t for t, _, _ in got} == {TOPIC}


def test_a_replay_overwrites_the_same_files(tmp_path):
    out = tmp_path / "archive"
    _run_stream(out, tmp_path / "c1.jsonl")
    first = {p: p.read_bytes() for p in out.rglob("*.avro")}
    _run_stream(out, tmp_path / "c2.jsonl")
    second = {p: p.read_bytes() for p in out.rglob("*.avro")}
    assert second == first  # the same names, byte for byte: no duplicates
    assert _read_tree(out) == EXPECTED_FILES


def test_records_are_archived_verbatim(tmp_path):
    out = tmp_path / "archive"
    _run_stream(out, tmp_path / "c.jsonl")
    with open(out / "dt=1970-01-01/hour=00/raw-19700101T000010Z-p0001-o000000000001.avro",
              "rb") as fh:
        (rec,) = list(fastavro.reader(fh))
    src = _rec(1, 1, 15).value
    assert rec["envelope"] == src.value and rec["key"] == src.key
    assert (rec["topic"], rec["timestamp"]) == (TOPIC, datetime.fromtimestamp(15, UTC))
