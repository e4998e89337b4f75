"""Write rows to a ClickHouse table: batched Arrow inserts, retries, dead letters.

Follows Beam's ``BigQueryWriteFn``: one client per DoFn instance (``setup``), rows
buffered by count, estimated bytes and age and always flushed in ``finish_bundle``
(a finished bundle is durable), transient store errors retried with bounded
exponential backoff and then raised (the runner retries the bundle), rows the
store or the Arrow conversion rejects isolated and emitted on ``failed_rows`` as
bad rows. Each batch carries an ``insert_deduplication_token`` derived from its
content, so a retried bundle re-inserting the same batch is dropped by the store
(tables need ``non_replicated_deduplication_window`` on a non-replicated engine,
see migration 0007); ``events`` also collapses replays by ``event_id`` (FINAL).

The pure functions (type mapping, Arrow building, token, error classification,
bisection) do the work; ``_WriteFn`` only holds the buffer and the client.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import pickle
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import apache_beam as beam
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.pvalue import TaggedOutput

from transforms.offsets import reports
from transforms.results import bad_row, source_of, with_source, without_source

log = logging.getLogger(__name__)

FAILED_ROWS = "failed_rows"  # tag of the rejected rows (as bad rows)
STAGE = "sink"
FAILURE_TYPE = "store_rejected"
NAMESPACE = "clickhouse_sink"

TRANSIENT, DATA, FATAL = "transient", "data", "fatal"

# ClickHouse error codes (src/Common/ErrorCodes.cpp).
# The store is busy, overloaded or unreachable: the same insert can succeed later.
TRANSIENT_CODES = frozenset({
    3,    # UNEXPECTED_END_OF_FILE (connection cut mid-body)
    32,   # ATTEMPT_TO_READ_AFTER_EOF
    159,  # TIMEOUT_EXCEEDED
    164,  # READONLY (replica temporarily read-only)
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    203,  # NO_FREE_CONNECTION
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    252,  # TOO_MANY_PARTS
    285,  # TOO_FEW_LIVE_REPLICAS
    319,  # UNKNOWN_STATUS_OF_INSERT
    373,  # SESSION_IS_LOCKED
    394,  # QUERY_WAS_CANCELLED
    425,  # SYSTEM_ERROR
    439,  # CANNOT_SCHEDULE_TASK
    999,  # KEEPER_EXCEPTION
})
# A value in the batch cannot be stored: bisect the batch, dead-letter the culprits.
DATA_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    25,   # CANNOT_PARSE_ESCAPE_SEQUENCE
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    190,  # SIZES_OF_ARRAYS_DONT_MATCH
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    376,  # CANNOT_PARSE_UUID
    377,  # ILLEGAL_SYNTAX_FOR_DATA_TYPE
    407,  # DECIMAL_OVERFLOW
    469,  # VIOLATED_CONSTRAINT
    691,  # UNKNOWN_ELEMENT_OF_ENUM
})
_CODE_RE = re.compile(r"\bCode: (\d+)\b|exception, code: (\d+)")
_HTTP_STATUS_RE = re.compile(r"HTTP status (\d{3})")


# ---- error classification ---------------------------------------------------

class StoreUnavailableError(RuntimeError):
    """Transient failures outlasted the retry budget: the bundle fails, the runner retries it."""


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code of an exception: its ``code`` attribute or its text."""
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code > 0:
        return code
    match = _CODE_RE.search(str(exc))
    return int(match.group(1) or match.group(2)) if match else None


def classify_error(exc: BaseException) -> str:
    """``transient`` (retry), ``data`` (a row is bad: isolate it) or ``fatal`` (raise).

    Unknown ClickHouse codes are fatal, not data: dead-lettering a whole batch
    because a table is missing would turn a deployment mistake into data loss.
    """
    if isinstance(exc, StoreUnavailableError):
        return FATAL
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return TRANSIENT
    code = error_code(exc)
    if code is not None:
        if code in TRANSIENT_CODES:
            return TRANSIENT
        return DATA if code in DATA_CODES else FATAL
    from clickhouse_connect.driver.exceptions import OperationalError

    if isinstance(exc, OperationalError):  # transport failure: refused, reset, timed out
        return TRANSIENT
    status = _HTTP_STATUS_RE.search(str(exc))
    if status and status.group(1).startswith("5"):  # a proxy or server error without a code
        return TRANSIENT
    return FATAL


def is_connection_error(exc: BaseException) -> bool:
    """A failure after which the client's pooled connections are suspect: reconnect."""
    from clickhouse_connect.driver.exceptions import OperationalError

    return isinstance(exc, (ConnectionError, TimeoutError, OperationalError)) or (
        error_code(exc) in (3, 32, 209, 210))


def backoff_delay(attempt: int, initial_s: float, max_s: float,
                  rng: random.Random | None = None) -> float:
    """Delay before retry ``attempt`` (1-based): exponential, capped, jittered 50-100%."""
    ceiling = min(max_s, initial_s * 2 ** (attempt - 1))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


# ---- ClickHouse types -> Arrow columns ------------------------------------------

_INT_TYPES = {
    "UInt8": pa.uint8(), "UInt16": pa.uint16(), "UInt32": pa.uint32(), "UInt64": pa.uint64(),
    "Int8": pa.int8(), "Int16": pa.int16(), "Int32": pa.int32(), "Int64": pa.int64(),
    "Float32": pa.float32(), "Float64": pa.float64(), "Bool": pa.bool_(),
    "String": pa.string(), "UUID": pa.binary(16), "Date": pa.date32(), "Date32": pa.date32(),
}
_WRAPPERS = ("LowCardinality(", "Nullable(")


def arrow_type(ch_type: str) -> pa.DataType | None:
    """Arrow type that ClickHouse reads into ``ch_type`` without loss; None: let Arrow infer.

    Exact widths matter: ClickHouse wraps an Int64 300 into UInt8 44 silently, while
    Arrow refuses 300 as uint8, so a bad value is caught here, per row.
    """
    t = ch_type.strip()
    while t.startswith(_WRAPPERS) and t.endswith(")"):
        t = t[t.index("(") + 1:-1].strip()
    if t in _INT_TYPES:
        return _INT_TYPES[t]
    if t.startswith("FixedString("):
        return pa.string()
    if t == "DateTime" or t.startswith("DateTime("):
        return pa.timestamp("s", tz="UTC")
    if t.startswith("DateTime64("):
        precision = int(t[len("DateTime64("):].split(",")[0].rstrip(")"))
        units = ("s", "ms", "ms", "ms", "us", "us", "us", "ns", "ns", "ns")
        return pa.timestamp(units[precision], tz="UTC")
    if t.startswith("Array(") and t.endswith(")"):
        inner = arrow_type(t[len("Array("):-1])
        return pa.list_(inner) if inner is not None else None
    return None


def arrow_schema(column_types: dict[str, str], columns: Sequence[str]) -> list[tuple[str, Any]]:
    """(column, arrow type or None) for the columns the sink writes, in order."""
    missing = [c for c in columns if c not in column_types]
    if missing:
        raise ValueError(f"columns {missing} are not in the table (it has {sorted(column_types)})")
    return [(c, arrow_type(column_types[c])) for c in columns]


def _uuid_bytes(value: Any) -> bytes | None:
    if value is None or (isinstance(value, bytes) and len(value) == 16):
        return value
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, str):
        return uuid.UUID(value).bytes
    raise TypeError(f"{value!r} is not a UUID")


def _column(values: Sequence[Any], typ: Any) -> pa.Array:
    if typ == pa.binary(16):  # UUID: 16 raw bytes, no text parsing on either side
        try:
            values = [v.bytes for v in values]
        except AttributeError:
            values = [_uuid_bytes(v) for v in values]
    elif typ is not None and pa.types.is_list(typ):
        # Arrow would silently take the text "ab" as the list ["a", "b"]
        text = next((v for v in values if isinstance(v, (str, bytes))), None)
        if text is not None:
            raise TypeError(f"{text!r:.100} is text, not a list")
    return pa.array(values, type=typ)


@dataclass(frozen=True)
class Built:
    """An Arrow table of the convertible rows; ``kept[i]`` is table row i's index in the
    input, ``rejected`` maps input index -> messages."""

    table: pa.Table
    kept: list[int]
    rejected: dict[int, list[str]]


def build_table(rows: Sequence[dict[str, Any]], schema: Sequence[tuple[str, Any]]) -> Built:
    """Row dicts to one Arrow table, column by column (a missing key is null -> the
    column's default). A column that fails is re-checked value by value to find the
    rows to reject; the other rows are rebuilt without them."""
    rejected: dict[int, list[str]] = {}
    arrays = []
    with _gc_paused():
        columns = _transpose(rows, [n for n, _ in schema])
    for (name, typ), values in zip(schema, columns, strict=True):
        try:
            with _gc_paused():
                arrays.append(_column(values, typ))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            bad = _bad_values(values, typ)
            if not bad:  # fails only as a whole (e.g. mixed types inferred): reject all
                bad = {i: f"{type(exc).__name__}: {exc}" for i in range(len(values))}
            for i, msg in bad.items():
                rejected.setdefault(i, []).append(f"column {name}: {msg}")
    if not rejected:
        return Built(pa.Table.from_arrays(arrays, names=[n for n, _ in schema]),
                     list(range(len(rows))), {})
    kept = [i for i in range(len(rows)) if i not in rejected]
    return Built(build_table([rows[i] for i in kept], schema).table, kept, rejected)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while columns are built: the tuples and lists made
    here hold no cycles, yet each allocation burst triggers collections that walk every
    live row (a batch of 10k rows built 2.3x faster without them)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _transpose(rows: Sequence[dict[str, Any]], names: list[str]) -> list[Sequence[Any]]:
    """Columns of values; itemgetter + zip run in C (a third cheaper than 46 list
    comprehensions of ``row.get``), with a per-row path when some row lacks a key."""
    if not rows:
        return [[] for _ in names]
    getter = itemgetter(*names) if len(names) > 1 else (lambda r: (r[names[0]],))
    try:
        tuples = list(map(getter, rows))
    except (KeyError, TypeError):
        tuples = [tuple(map(row.get, names)) for row in rows]
    return list(zip(*tuples, strict=True))


def _bad_values(values: Sequence[Any], typ: Any) -> dict[int, str]:
    bad = {}
    for i, value in enumerate(values):
        try:
            _column([value], typ)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            bad[i] = f"{type(exc).__name__}: {exc} (value {value!r:.200})"
    return bad


# ---- idempotence ---------------------------------------------------------

def dedup_token(table: pa.Table, key: str | None) -> str:
    """A batch's ``insert_deduplication_token``.

    With a key column (``event_id``): a hash of the sorted keys, so the same events
    give the same token whatever their order or later enrichment. Without one: a
    hash of the serialized batch (order matters).
    """
    digest = hashlib.blake2b(digest_size=16)
    if key is not None:
        col = table.column(key).combine_chunks()
        col = pc.take(col, pc.sort_indices(col))  # fresh buffers, no slice offsets
        for buf in col.buffers():
            if buf is not None:
                digest.update(buf)
    else:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            # take(): a bisection slice must serialize like a fresh table of its rows
            writer.write_table(table.take(pa.array(range(table.num_rows))))
        digest.update(sink.getvalue())
    return f"{key or 'rows'}-{table.num_rows}-{digest.hexdigest()}"


# ---- isolating rejected rows ----------------------------------------------

def isolate_rejects(n: int, insert: Callable[[int, int], None],
                    is_data_error: Callable[[BaseException], bool]) -> dict[int, str]:
    """Insert rows [0, n) via ``insert(lo, hi)``; on a data error split the range in
    halves until single rows remain. Returns index -> error text of rejected rows;
    any other error propagates. Costs about 2·k·log2(n) inserts for k bad rows."""
    rejected: dict[int, str] = {}
    stack = [(0, n)]
    while stack:
        lo, hi = stack.pop()
        try:
            insert(lo, hi)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            if hi - lo == 1:
                rejected[lo] = str(exc)
            else:
                mid = (lo + hi) // 2
                stack += [(mid, hi), (lo, mid)]  # left half first
    return rejected


# ---- bad rows --------------------------------------------------------------

def rejected_row(row: Any, messages: list[str]) -> dict[str, Any]:
    """A bad row for a row the store refused; payload_raw is the row as JSON."""
    try:
        payload = orjson.dumps(row, default=str)
        partial = orjson.loads(payload) if isinstance(row, dict) else {}
    except (TypeError, orjson.JSONEncodeError):  # e.g. an int beyond 64 bits
        payload = json.dumps(row, default=str).encode() if isinstance(row, dict) else b""
        partial = json.loads(payload) if payload else {}
        payload = payload or repr(row).encode()
    received = row.get("received_at") if isinstance(row, dict) else None
    return bad_row(STAGE, FAILURE_TYPE, messages, payload, partial,
                   received if isinstance(received, datetime) and received.tzinfo else
                   datetime.now(UTC))


def _row_bytes(row: dict[str, Any]) -> int:
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in row.values())


# ---- batches of rows as elements --------------------------------------------

class RowBatch(list):
    """Type hint of a PCollection of row lists (``batches=True``): one element, many rows.
    Also types other lists that cross between stages (a browser's gathered rows)."""


class RowBatchCoder(beam.coders.Coder):
    """Pickles a batch (should a runner move one between stages), but estimates its size
    from its first row: Beam samples output sizes (always the first ten elements of a
    bundle), and pickling 10,000 rows to measure them cost 7% of a backfill. Declare it
    with ``.with_output_types(RowBatch)`` on the step that emits the lists."""

    def encode(self, value: list[dict[str, Any]]) -> bytes:
        return pickle.dumps(list(value), protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> list[dict[str, Any]]:
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value: list[dict[str, Any]]) -> int:
        return len(self.encode(value[:1])) * len(value) if value else 1

    def to_type_hint(self) -> type:
        return RowBatch


beam.coders.registry.register_coder(RowBatch, RowBatchCoder)


# ---- the DoFn --------------------------------------------------------------

@dataclass(frozen=True)
class SinkConfig:
    max_rows: int = 10_000
    max_bytes: int = 32 << 20
    max_buffer_age_s: float = 5.0
    max_retries: int = 8
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    dedup_key: str | None = None  # None: hash whole batches

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_bytes < 1 or self.max_buffer_age_s <= 0:
            raise ValueError("max_rows, max_bytes and max_buffer_age_s must be positive")
        if self.max_retries < 0 or self.initial_backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("retry settings must not be negative")


def buffer_full(rows: int, row_bytes: float, age_s: float, cfg: SinkConfig) -> bool:
    """Flush now? By count, by estimated bytes (rows x sampled mean row size), or
    because the oldest buffered row waited ``max_buffer_age_s`` (checked per element:
    a bundle that stalls keeps its rows until the next element or finish_bundle)."""
    return (rows >= cfg.max_rows or rows * row_bytes >= cfg.max_bytes
            or age_s >= cfg.max_buffer_age_s)


_SIZE_SAMPLE_EVERY = 64  # estimating a row's size costs as much as converting it


class _WriteFn(beam.DoFn):
    def __init__(self, store_url: str | None, table: str, columns: Sequence[str],
                 to_row: Callable[[Any], dict[str, Any]] | None, cfg: SinkConfig,
                 batches: bool = False) -> None:
        self._store_url, self._table, self._columns = store_url, table, list(columns)
        self._to_row, self._cfg, self._batches = to_row, cfg, batches
        self._client: Any = None
        self._schema: list[tuple[str, Any]] | None = None
        self._rows: list[dict[str, Any]] = []
        self._windowed: list[Any] = []
        self._sources: list[Any] = []  # each buffered row's stream position (or None)
        self._oldest = 0.0
        self._row_size = 0.0
        m = beam.metrics.Metrics
        self._m_rows = m.counter(NAMESPACE, f"{table}_rows_inserted")
        self._m_batches = m.counter(NAMESPACE, f"{table}_batches")
        self._m_batch_rows = m.distribution(NAMESPACE, f"{table}_batch_rows")
        self._m_latency = m.distribution(NAMESPACE, f"{table}_insert_latency_ms")
        self._m_retries = m.counter(NAMESPACE, f"{table}_retries")
        self._m_errors = m.counter(NAMESPACE, f"{table}_insert_errors")
        self._m_failed = m.counter(NAMESPACE, f"{table}_rows_failed")

    # -- lifecycle

    def setup(self) -> None:
        try:
            self._connect()
        except Exception as exc:  # a store that is down now may be up at the first flush
            if classify_error(exc) != TRANSIENT:
                raise
            log.warning("store not reachable in setup, will retry on flush: %s", exc)

    def start_bundle(self) -> None:
        self._rows, self._windowed, self._sources = [], [], []

    def process(self, element: Any, wv=beam.DoFn.WindowedValueParam) -> list[Any] | None:
        # Returns a list or None, not a generator: one less object per element.
        if self._batches:
            return self._add_batch(element, wv)
        if self._to_row is None:
            row = element
        else:
            try:
                row = self._to_row(element)
            except Exception as exc:  # the mapping is Python-side conversion: dead-letter
                self._m_failed.inc()
                return [TaggedOutput(FAILED_ROWS, rejected_row(
                    element, [f"to_row: {type(exc).__name__}: {exc}"]))]
        rows = self._rows
        n = len(rows)
        now = time.monotonic()
        if not n:
            self._oldest = now
        if not n % _SIZE_SAMPLE_EVERY:
            size = _row_bytes(row) if isinstance(row, dict) else 0
            self._row_size = 0.8 * self._row_size + 0.2 * size if n else size
        rows.append(row)
        self._windowed.append(wv)
        self._sources.append(source_of(element))
        if buffer_full(n + 1, self._row_size, now - self._oldest, self._cfg):
            return self._flush()
        return  # nothing (a literal "return None" makes Beam warn about the DoFn)

    def _add_batch(self, elements: Sequence[Any], wv: Any) -> list[Any] | None:
        """A list of elements at once: one buffer extension instead of a call per row."""
        failed: list[Any] = []
        if self._to_row is None:
            rows = list(elements)
            self._sources += [source_of(e) for e in rows]
        else:
            rows = []
            for element in elements:
                try:
                    rows.append(self._to_row(element))
                    self._sources.append(source_of(element))
                except Exception as exc:  # as in process: dead-letter the element
                    self._m_failed.inc()
                    failed.append(TaggedOutput(FAILED_ROWS, rejected_row(
                        element, [f"to_row: {type(exc).__name__}: {exc}"])))
        if not rows:
            return failed or None
        now = time.monotonic()
        if not self._rows:
            self._oldest = now
        size = _row_bytes(rows[0]) if isinstance(rows[0], dict) else 0
        self._row_size = 0.8 * self._row_size + 0.2 * size if self._rows else size
        self._rows += rows
        self._windowed += [wv] * len(rows)
        if buffer_full(len(self._rows), self._row_size, now - self._oldest, self._cfg):
            failed += self._flush()
        return failed or None

    def finish_bundle(self) -> list[Any]:
        return self._flush()

    def teardown(self) -> None:
        self._close()

    # -- flushing

    def _flush(self) -> list[Any]:
        rows, windowed, sources = self._rows, self._windowed, self._sources
        if not rows:
            return []
        self._rows, self._windowed, self._sources = [], [], []
        self._with_retries(lambda: self._client_schema())  # schema before building
        built = build_table(rows, self._schema)
        rejected = dict(built.rejected)
        if built.table.num_rows:
            failed = isolate_rejects(
                built.table.num_rows,
                lambda lo, hi: self._insert(built.table.slice(lo, hi - lo)),
                lambda exc: classify_error(exc) == DATA)
            for i, msg in failed.items():
                rejected[built.kept[i]] = [msg]
        self._m_failed.inc(len(rejected))
        out: list[Any] = [
            TaggedOutput(FAILED_ROWS, windowed[i].with_value(with_source(
                rejected_row(without_source(rows[i]), msgs), sources[i])))
            for i, msgs in sorted(rejected.items())]
        # Stream positions of the rows now stored: their Kafka offsets may be committed.
        out += [windowed[0].with_value(report) for report in reports(
            sources[i] for i in range(len(rows)) if i not in rejected)]
        return out

    def _insert(self, table: pa.Table) -> None:
        token = dedup_token(table, self._cfg.dedup_key)

        def attempt() -> None:
            start = time.perf_counter()
            self._client_schema()
            self._client.insert_arrow(self._table, table,
                                      settings={"insert_deduplication_token": token})
            self._m_latency.update(int((time.perf_counter() - start) * 1000))

        self._with_retries(attempt)
        self._m_rows.inc(table.num_rows)
        self._m_batches.inc()
        self._m_batch_rows.update(table.num_rows)

    def _with_retries(self, call: Callable[[], None]) -> None:
        """Run ``call``; retry transient failures with backoff, raise past the budget."""
        attempt = 0
        while True:
            try:
                call()
                return
            except Exception as exc:
                kind = classify_error(exc)
                if kind != TRANSIENT:
                    raise
                self._m_errors.inc()
                if is_connection_error(exc):
                    self._close()
                attempt += 1
                if attempt > self._cfg.max_retries:
                    raise StoreUnavailableError(
                        f"insert into {self._table} still failing after {attempt - 1} "
                        f"retries: {exc}") from exc
                self._m_retries.inc()
                delay = backoff_delay(attempt, self._cfg.initial_backoff_s,
                                      self._cfg.max_backoff_s)
                log.warning("insert into %s failed (%s), retry %d in %.1fs",
                            self._table, exc, attempt, delay)
                time.sleep(delay)

    # -- client

    def _client_schema(self) -> None:
        if self._client is None:
            self._connect()
        if self._schema is None:
            described = self._client.query(f"DESCRIBE TABLE {self._table}").result_rows
            self._schema = arrow_schema({r[0]: r[1] for r in described}, self._columns)

    def _connect(self) -> None:
        from radixinsight.store import connect

        self._client = connect(self._store_url)

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # a dead connection cannot be closed cleanly
                log.debug("closing the store client: %s", exc)


class WriteToClickHouse(beam.PTransform):
    """Insert each element (a row dict, or what ``to_row`` makes of it) into ``table``.

    Returns a tagged result: the main output reports the stream positions of stored
    rows (``((topic, partition), [offsets])``, only for rows that carry one, see
    transforms/offsets.py), ``failed_rows`` carries bad
    rows (ARCHITECTURE.md) for rows the store rejected, to flatten into the
    dead-letter stream. ``dedup_key`` defaults to ``event_id`` when it is a column.
    ``batches=True``: each element is a LIST of elements (from ``beam.BatchElements``
    or a step that emits lists), taken into the buffer in one step: the per-element
    cost of a Beam step is then paid per list, not per row.
    """

    def __init__(self, store_url: str | None, table: str, columns: Sequence[str], *,
                 to_row: Callable[[Any], dict[str, Any]] | None = None,
                 max_rows: int = 10_000, max_bytes: int = 32 << 20,
                 max_buffer_age_s: float = 5.0, max_retries: int = 8,
                 initial_backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 dedup_key: str | None = "", batches: bool = False) -> None:
        super().__init__()
        if dedup_key == "":
            dedup_key = "event_id" if "event_id" in columns else None
        cfg = SinkConfig(max_rows, max_bytes, max_buffer_age_s, max_retries,
                         initial_backoff_s, max_backoff_s, dedup_key)
        self._fn = _WriteFn(store_url, table, columns, to_row, cfg, batches)

    def expand(self, rows):
        return rows | "Insert" >> beam.ParDo(self._fn).with_outputs(FAILED_ROWS, main="inserted")


def failed_rows(result: Any) -> list[beam.PCollection]:
    """The ``failed_rows`` output of a sink's result, as a list to flatten with other
    bad rows; empty for a sink without one (tests pass plain assertions as sinks)."""
    if isinstance(result, beam.pvalue.DoOutputsTuple):
        return [result[FAILED_ROWS]]
    return []
