"""The archive job: Kafka ``radix.events.raw`` -> hourly Avro files (cold storage).

Each raw record is kept verbatim (``schemas/avro/raw_event.avsc``) in files laid out as
``OUTPUT/dt=YYYY-MM-DD/hour=HH/raw-<window start>-p<partition>-o<first offset>.avro``,
one file per fixed window of Kafka record time and partition, plus one per late flush.
The backfill reads them back with ``transforms.archive_io.ReadRawEvents``.

Why per-partition state and timers instead of ``WindowInto`` + ``GroupByKey``: the Kafka
reader would commit offsets as soon as records reach the runner, and a window's records
wait in runner state for an hour; Prism keeps that state in memory, so a killed job would
lose up to an hour of archive. Here the reader does not commit; each partition's records
stay in state until their window's file is renamed into place, and only then is the
group's offset committed, to the lowest offset still buffered. A restart replays from
there: at-least-once, never a loss. Replayed records land in files of the same name
(same window, partition, first offset) and overwrite them when the replay batches the
same way; otherwise they are duplicates, which the backfill removes by ``event_id``.

Files are written to a hidden temporary name and renamed, so a reader of ``*.avro``
never sees a partial file (rename is atomic on local and HDFS filesystems; object
stores publish an object only when its upload completes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import apache_beam as beam
import orjson
from apache_beam.coders import coders
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec
from apache_beam.utils.timestamp import Timestamp

from pipelines.options import KafkaSourceOptions, kafka_read_config
from pipelines.runners import runner_args
from transforms.kafka_source import (
    KafkaPartition,
    KafkaReadConfig,
    KafkaRecord,
    ReadFromKafka,
    commit_offset,
)

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "avro" / "raw_event.avsc"
METRICS = "radixinsight.archive"
CODECS = ("deflate", "null")
# Uncompressed bytes per Avro block: deflate restarts per block, and fastavro's 16 kB
# default gives 176 B/event where 1 MiB gives 129 (bench/archive.py); readers split on
# blocks, so this is still ~1,200 events per split.
AVRO_BLOCK_BYTES = 1 << 20


class ArchiveOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--output_dir", default=".radixinsight/archive",
                            help="archive root: a local path or any Beam filesystem URL "
                                 "(gs://, s3://, hdfs://)")
        parser.add_argument("--file_window_s", type=int, default=3600,
                            help="one file per partition and this many seconds of Kafka "
                                 "record time (must divide a day)")
        parser.add_argument("--codec", default="deflate", choices=list(CODECS),
                            help="Avro block codec")


# ---------------------------------------------------------------- pure functions


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """The archive's Avro schema as a dict (parsed once, pickled to workers)."""
    return json.loads(path.read_text())


def check_window(window_s: int) -> int:
    """Windows must tile days so every file belongs to one ``dt=``/``hour=`` directory."""
    if window_s <= 0 or 86400 % window_s:
        raise ValueError(f"--file_window_s must be a positive divisor of 86400, not {window_s}")
    return window_s


def window_start_ms(timestamp_ms: int, window_s: int) -> int:
    """Start of the fixed window (epoch-aligned, as ``FixedWindows``) holding ``timestamp_ms``."""
    size = window_s * 1000
    return timestamp_ms - timestamp_ms % size


def archive_path(output_dir: str, start_ms: int, partition: int, first_offset: int) -> str:
    """Deterministic file name: a replay of the same records writes the same name."""
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    name = f"raw-{start:%Y%m%dT%H%M%SZ}-p{partition:04d}-o{first_offset:012d}.avro"
    # "/" joins paths on every Beam filesystem (and POSIX); FileSystems.join would need
    # the filesystem's package installed just to build a name.
    return f"{output_dir.rstrip('/')}/dt={start:%Y-%m-%d}/hour={start:%H}/{name}"


def temp_path(final_path: str) -> str:
    """A hidden sibling of ``final_path``: not matched by ``*.avro``, unique per attempt."""
    directory, name = final_path.rsplit("/", 1)
    return f"{directory}/.{name}.{uuid.uuid4().hex}.tmp"


def _received_at_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def pruning_fields(envelope: bytes) -> tuple[int | None, str | None]:
    """(received_at ms, project_id) copied from the envelope; (None, None) when unreadable."""
    try:
        env = orjson.loads(envelope)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(env, dict):
        return None, None
    project = env.get("project_id")
    return _received_at_ms(env.get("received_at")), project if isinstance(project, str) else None


class Buffered(NamedTuple):
    """A record waiting in state; topic and partition are the state's key."""

    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


BUFFERED_CODER = coders.TupleCoder([coders.VarIntCoder(), coders.VarIntCoder(),
                                    coders.NullableCoder(coders.BytesCoder()),
                                    coders.BytesCoder()])


def avro_record(topic: str, partition: int, rec: Buffered) -> dict[str, Any]:
    """One Avro record of ``raw_event.avsc``."""
    received_at, project_id = pruning_fields(rec.value)
    return {"envelope": rec.value, "key": rec.key, "topic": topic, "partition": partition,
            "offset": rec.offset, "timestamp": rec.timestamp_ms, "received_at": received_at,
            "project_id": project_id}


def split_due(records: Iterable[Buffered], due_ms: int,
              window_s: int) -> tuple[dict[int, list[Buffered]], list[Buffered]]:
    """Records whose window ended by ``due_ms``, by window start and in offset order;
    and the rest, still open."""
    due: dict[int, list[Buffered]] = {}
    rest = []
    for rec in records:
        start = window_start_ms(rec.timestamp_ms, window_s)
        if start + window_s * 1000 <= due_ms:
            due.setdefault(start, []).append(rec)
        else:
            rest.append(rec)
    for recs in due.values():
        recs.sort(key=lambda r: r.offset)
    return due, rest


def safe_commit_offset(remaining: Iterable[Buffered], max_offset_seen: int) -> int:
    """The next offset the group may resume from: every record below it is in a file."""
    return min((r.offset for r in remaining), default=max_offset_seen + 1)


def write_avro_file(path: str, schema: dict[str, Any], records: Iterable[dict[str, Any]],
                    codec: str = "deflate") -> int:
    """Write ``records`` to ``path`` via a temporary name; returns the bytes written."""
    import fastavro

    tmp = temp_path(path)
    fh = _CountingWriter(FileSystems.create(tmp, mime_type="application/avro",
                                            compression_type=CompressionTypes.UNCOMPRESSED))
    try:
        try:
            # Sync marker from the name, not random: a replay writes byte-identical files.
            marker = hashlib.blake2b(path.encode(), digest_size=16).digest()
            fastavro.writer(fh, fastavro.parse_schema(schema), records, codec=codec,
                            sync_marker=marker, sync_interval=AVRO_BLOCK_BYTES)
        finally:
            fh.close()
        FileSystems.rename([tmp], [path])  # overwrites a previous attempt's file of this name
    except Exception:
        with contextlib.suppress(Exception):  # the original error is the one to raise
            FileSystems.delete([tmp])
        raise
    return fh.written


class _CountingWriter:
    """Counts bytes on their way out (a metadata call costs a request on object stores)."""

    def __init__(self, fh: Any) -> None:
        self._fh, self.written = fh, 0

    def write(self, data: bytes) -> int | None:
        self.written += len(data)
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()

    def seekable(self) -> bool:
        return False  # a new file: fastavro must not try to append

    def close(self) -> None:
        self._fh.close()


# ---------------------------------------------------------------- transforms


class KafkaCommitter:
    """Commits the archive's consumer group (pickled to workers with its config)."""

    def __init__(self, cfg: KafkaReadConfig) -> None:
        self._cfg = cfg

    def __call__(self, topic: str, partition: int, next_offset: int) -> None:
        commit_offset(self._cfg, KafkaPartition(topic, partition), next_offset)


Committer = Callable[[str, int, int], None]


def _by_partition(rec: KafkaRecord) -> tuple[tuple[str, int], Buffered]:
    return (rec.topic, rec.partition), Buffered(rec.offset, rec.timestamp_ms, rec.key, rec.value)


class _ArchivePartitionFn(beam.DoFn):
    """Buffers one partition's records until their window's end passes the watermark,
    then writes one file per window and commits below what is still buffered.

    One timer per partition, always set to the earliest buffered window's end. A late
    record (its window already written) sets it to the last firing time, which the
    watermark has passed, so it is written at once in a file of its own.
    """

    BUFFER = BagStateSpec("buffer", BUFFERED_CODER)
    MAX_OFFSET = ReadModifyWriteStateSpec("max_offset", coders.VarIntCoder())
    TIMER_AT = ReadModifyWriteStateSpec("timer_at_ms", coders.VarIntCoder())
    FIRED_AT = ReadModifyWriteStateSpec("fired_at_ms", coders.VarIntCoder())
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def __init__(self, output_dir: str, window_s: int, schema: dict[str, Any], codec: str,
                 commit: Committer | None) -> None:
        self._output_dir, self._window_s = output_dir, window_s
        self._schema, self._codec, self._commit = schema, codec, commit
        self._records = beam.metrics.Metrics.counter(METRICS, "records")
        self._files = beam.metrics.Metrics.counter(METRICS, "files")
        self._late_files = beam.metrics.Metrics.counter(METRICS, "late_files")
        self._bytes = beam.metrics.Metrics.counter(METRICS, "bytes")

    def process(self, element: tuple[tuple[str, int], Buffered],
                buffer=beam.DoFn.StateParam(BUFFER),
                max_offset=beam.DoFn.StateParam(MAX_OFFSET),
                timer_at=beam.DoFn.StateParam(TIMER_AT),
                fired_at=beam.DoFn.StateParam(FIRED_AT),
                flush=beam.DoFn.TimerParam(FLUSH)):
        _, rec = element
        rec = Buffered(*rec)
        buffer.add(rec)
        seen = max_offset.read()
        if seen is None or rec.offset > seen:
            max_offset.write(rec.offset)
        end = window_start_ms(rec.timestamp_ms, self._window_s) + self._window_s * 1000
        target = max(end, fired_at.read() or 0)
        current = timer_at.read()
        if current is None or target < current:
            flush.set(Timestamp(micros=target * 1000))
            timer_at.write(target)

    @beam.transforms.userstate.on_timer(FLUSH)
    def on_flush(self, key=beam.DoFn.KeyParam, fire_ts=beam.DoFn.TimestampParam,
                 buffer=beam.DoFn.StateParam(BUFFER),
                 max_offset=beam.DoFn.StateParam(MAX_OFFSET),
                 timer_at=beam.DoFn.StateParam(TIMER_AT),
                 fired_at=beam.DoFn.StateParam(FIRED_AT),
                 flush=beam.DoFn.TimerParam(FLUSH)):
        topic, partition = key
        due_ms = fire_ts.micros // 1000
        previous_fire = fired_at.read()
        due, rest = split_due((Buffered(*r) for r in buffer.read()), due_ms, self._window_s)
        for start, recs in sorted(due.items()):
            path = archive_path(self._output_dir, start, partition, recs[0].offset)
            size = write_avro_file(path, self._schema,
                                   (avro_record(topic, partition, r) for r in recs), self._codec)
            self._records.inc(len(recs))
            self._files.inc()
            self._bytes.inc(size)
            if previous_fire is not None and start + self._window_s * 1000 <= previous_fire:
                self._late_files.inc()
            yield path
        buffer.clear()
        for rec in rest:
            buffer.add(rec)
        fired_at.write(max(due_ms, previous_fire or 0))
        if rest:
            nxt = min(window_start_ms(r.timestamp_ms, self._window_s) for r in rest)
            nxt += self._window_s * 1000
            flush.set(Timestamp(micros=nxt * 1000))
            timer_at.write(nxt)
        else:
            timer_at.clear()
        if self._commit is not None and due:
            seen = max_offset.read()
            self._commit(topic, partition, safe_commit_offset(rest, -1 if seen is None else seen))


class WriteArchive(beam.PTransform):
    """``KafkaRecord`` -> Avro files; emits the path of every file written.

    ``commit(topic, partition, next_offset)`` is called once files are in place (None: no
    commits, e.g. in tests).
    """

    def __init__(self, output_dir: str, window_s: int = 3600, *, codec: str = "deflate",
                 commit: Committer | None = None, schema: dict[str, Any] | None = None) -> None:
        super().__init__()
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, not {codec!r}")
        self._output_dir = output_dir.rstrip("/") or "/"
        self._window_s = check_window(window_s)
        self._codec, self._commit = codec, commit
        self._schema = schema or load_schema()

    def expand(self, records):
        return (
            records
            | "ByPartition" >> beam.Map(_by_partition).with_output_types(
                beam.typehints.KV[beam.typehints.Tuple[str, int], Any])
            | "WriteFiles" >> beam.ParDo(_ArchivePartitionFn(
                self._output_dir, self._window_s, self._schema, self._codec, self._commit))
            .with_output_types(str)
        )


def build(p: beam.Pipeline, source: beam.PTransform, sink: beam.PTransform,
          opts: ArchiveOptions) -> beam.PCollection:
    """source yields ``KafkaRecord``s timestamped by the broker; sink is a ``WriteArchive``.
    Returns the paths of the files written."""
    return p | "Source" >> source | "Archive" >> sink


def read_config(opts: PipelineOptions) -> KafkaReadConfig:
    # The reader never commits: WriteArchive commits after the files exist.
    return kafka_read_config(opts, "radixinsight-archive")


def run(argv: list[str] | None = None) -> None:
    """Run until cancelled (Ctrl-C or SIGTERM)."""
    argv = runner_args(list(sys.argv[1:] if argv is None else argv), streaming=True)
    opts = PipelineOptions(argv).view_as(ArchiveOptions)
    if opts.view_as(KafkaSourceOptions).consumer_group == "radixinsight-streaming":
        raise ValueError("--consumer_group must differ from the streaming job's")
    cfg = read_config(opts)
    # Workers may run in another directory (Flink task managers): anchor local paths here.
    output_dir = opts.output_dir if "://" in opts.output_dir else os.path.abspath(opts.output_dir)
    sink = WriteArchive(output_dir, opts.file_window_s, codec=opts.codec,
                        commit=KafkaCommitter(cfg))
    with beam.Pipeline(options=opts) as p:
        build(p, ReadFromKafka(cfg), sink, opts)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    run()
