"""The archive job: pure functions, and the windowed file writing under TestStream."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import apache_beam as beam
import fastavro
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_stream
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
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
    read_config,
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


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    path = archive_path(str(tmp_path), T0, 0, 0)
    good = avro_record("radix.events.raw", 0, _buf(0, T0))
    with pytest.raises(TypeError, match="offset"):
        write_avro_file(path, load_schema(), [good, {**good, "offset": "not a long"}])
    assert list(tmp_path.rglob("*.*")) == []


def test_archive_options_have_units_and_defaults():
    opts = PipelineOptions([]).view_as(ArchiveOptions)
    assert (opts.file_window_s, opts.codec) == (3600, "deflate")
    assert read_config(opts).group_id == "radixinsight-archive"


@pytest.mark.parametrize("args, message", [
    (["--file_window_s=7"], "divisor of 86400"),
    (["--consumer_group=radixinsight-streaming"], "must differ"),
])
def test_cli_runs_the_archive_job_and_refuses_bad_options_before_starting(args, message):
    from radixinsight.cli import main

    with pytest.raises(ValueError, match=message):
        main(["pipeline", "archive", "--runner=direct", *args])


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


# ---------------------------------------------------------------- real Kafka, Prism

REPO = Path(__file__).resolve().parents[2]


def _produce(bootstrap: str, topic: str, start: int, n: int,
             timestamp_ms: int | None = None) -> dict[tuple[int, int], bytes]:
    """n envelopes over two partitions; returns {(partition, offset): value}."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        futures = []
        for i in range(start, start + n):
            value = envelope(event(event_id=f"00000000-0000-4000-8000-{i:012d}"))
            futures.append((producer.send(topic, key=f"p1:u{i}".encode(), value=value,
                                          partition=i % 2, timestamp_ms=timestamp_ms), value))
        producer.flush()
        out = {}
        for fut, value in futures:
            meta = fut.get(timeout=30)
            out[(meta.partition, meta.offset)] = value
        return out
    finally:
        producer.close()


def _start_job(runner: str, bootstrap: str, prefix: str, group: str, out_dir: Path, log: Path):
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "radixinsight.cli", "pipeline", "archive", f"--runner={runner}",
           f"--kafka_bootstrap={bootstrap}", f"--topic_prefix={prefix}",
           f"--consumer_group={group}", f"--output_dir={out_dir}", "--file_window_s=5"]
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True, env=os.environ.copy())


def _archived(out_dir: Path) -> list[tuple[int, int, bytes]]:
    """(partition, offset, envelope) of every record in every published file; reading each
    to its end, so a partial file (a kill mid-write made visible) would raise here."""
    out = []
    for path in out_dir.rglob("*.avro"):
        with open(path, "rb") as fh:
            out.extend((r["partition"], r["offset"], r["envelope"]) for r in fastavro.reader(fh))
    return out


def _wait_archived(out_dir: Path, want: set[tuple[int, int]], job, log: Path,
                   timeout_s: float = 180) -> list[tuple[int, int, bytes]]:
    import time

    from radixinsight import procs

    deadline = time.monotonic() + timeout_s
    while True:
        got = _archived(out_dir)
        if want <= {(p, o) for p, o, _ in got}:
            return got
        assert job.poll() is None, f"archive job exited{procs.log_tail(log)}"
        assert time.monotonic() < deadline, (
            f"{len(want - {(p, o) for p, o, _ in got})} records not archived"
            f"{procs.log_tail(log)}")
        time.sleep(0.5)


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in (0, 1)}
    finally:
        consumer.close()


def _wait_committed(bootstrap: str, group: str, topic: str, ends: dict[int, int],
                    timeout_s: float = 60) -> dict[int, int | None]:
    import time

    deadline = time.monotonic() + timeout_s
    got = _committed(bootstrap, group, topic)
    while got != ends and time.monotonic() < deadline:
        time.sleep(0.5)
        got = _committed(bootstrap, group, topic)
    return got


def _ends(produced: dict[tuple[int, int], bytes]) -> dict[int, int]:
    return {p: max(o for pp, o in produced if pp == p) + 1 for p in (0, 1)}


@pytest.mark.integration
@pytest.mark.parametrize("runner", ["prism", pytest.param("flink", marks=pytest.mark.flink)])
def test_archive_keeps_every_record_across_a_kill(runner, kafka_broker, tmp_path):
    import os
    import signal
    import time
    import uuid

    from radixinsight import procs
    from radixinsight.services.kafka_broker import create_topics
    from transforms.archive_io import ReadRawEvents

    prefix, group = f"arc{uuid.uuid4().hex[:8]}", f"archive-{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.events.raw"
    create_topics(kafka_broker.bootstrap, [topic], partitions=2)
    out_dir, log = tmp_path / "archive", tmp_path / "archive.log"
    produced = _produce(kafka_broker.bootstrap, topic, 0, 200)

    job = _start_job(runner, kafka_broker.bootstrap, prefix, group, out_dir, log)
    try:
        _wait_archived(out_dir, set(produced), job, log, timeout_s=300)
        # the group's offsets move only once the files exist, and then to the end
        assert _wait_committed(kafka_broker.bootstrap, group, topic,
                               _ends(produced)) == _ends(produced)
        ends_a = _ends(produced)
        # Records in flight when the job is killed, stamped 20 s ahead so their window is
        # still open at the kill.
        now_ms = int(time.time() * 1000)
        produced |= _produce(kafka_broker.bootstrap, topic, 200, 200, timestamp_ms=now_ms + 20_000)
        time.sleep(5)  # time to read them (not an assertion: the check below holds either way)
        # Read but not in a file: the group must not move past them (a reader committing
        # on its own would have committed everything by now, and B would be lost below).
        assert _committed(kafka_broker.bootstrap, group, topic) == ends_a
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=30)
    finally:
        procs.stop_pid(job.pid)
    produced |= _produce(kafka_broker.bootstrap, topic, 400, 200)
    # and some 60 s old: behind the watermark once the job has caught up, so their
    # timer is set in the past and must still fire
    produced |= _produce(kafka_broker.bootstrap, topic, 600, 10,
                         timestamp_ms=int(time.time() * 1000) - 60_000)

    job = _start_job(runner, kafka_broker.bootstrap, prefix, group, out_dir, log)
    try:
        got = _wait_archived(out_dir, set(produced), job, log, timeout_s=300)
        assert _wait_committed(kafka_broker.bootstrap, group, topic,
                               _ends(produced)) == _ends(produced)
    finally:
        procs.stop_pid(job.pid)
        assert not procs.pid_alive(job.pid)
    # every produced record, verbatim; a replay may repeat some (the backfill dedups)
    assert {(p, o) for p, o, _ in got} == set(produced)
    assert all(produced[(p, o)] == env for p, o, env in got)
    assert len(got) >= len(produced)

    # round trip: the backfill's reader gives back the very bytes the stream got
    with TestPipeline(runner="FnApiRunner") as p:
        read = p | ReadRawEvents(f"{out_dir}/dt=*/hour=*/*.avro", "avro")
        assert_that(read.raw | "Distinct" >> beam.Distinct(),
                    equal_to(list(produced.values())))
