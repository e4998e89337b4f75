"""The ClickHouse sink: pure functions, then the PTransform on a real chDB store."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from collector.envelope import make_envelope
from pipelines.streaming import EVENT_COLUMNS
from radixinsight.store import connect
from radixinsight.store.migrate import migrate
from tests.fixtures.events import event
from tests.fixtures.store import _wait_for_url
from transforms.clickhouse_sink import (
    DATA,
    FAILED_ROWS,
    FATAL,
    TRANSIENT,
    SinkConfig,
    StoreUnavailableError,
    WriteToClickHouse,
    arrow_schema,
    arrow_type,
    backoff_delay,
    buffer_full,
    build_table,
    classify_error,
    dedup_token,
    failed_rows,
    isolate_rejects,
    rejected_row,
)
from transforms.parse import decode_envelope
from transforms.results import bad_row_to_json
from transforms.validate import ValidateConfig, validate_envelope

_NOW = datetime.now(UTC).replace(microsecond=0)  # inside the events TTL


def _ids(n: int, start: int = 0) -> list[str]:
    return [f"00000000-0000-4000-8000-{i:012d}" for i in range(start, start + n)]


def _rows(n: int, start: int = 0) -> list[dict]:
    """events rows as the validate step makes them (UUIDs, aware datetimes, strings)."""
    rows = []
    for i, eid in enumerate(_ids(n, start)):
        ts = (_NOW - timedelta(seconds=i)).isoformat()
        env = make_envelope(event(event_id=eid, timestamp=ts,
                                  event_name=("page_view", "signup")[i % 2]),
                            project_id="p1", key_id="k1", ip="198.51.100.1", user_agent="ua")
        rows.append(validate_envelope(decode_envelope(env), ValidateConfig()))
    return rows


# ---- pure functions ------------------------------------------------------------

@pytest.mark.parametrize(("ch_type", "expected"), [
    ("UUID", pa.binary(16)),
    ("String", pa.string()),
    ("LowCardinality(String)", pa.string()),
    ("Nullable(UInt8)", pa.uint8()),
    ("LowCardinality(Nullable(String))", pa.string()),
    ("FixedString(2)", pa.string()),
    ("Int64", pa.int64()),
    ("Float32", pa.float32()),
    ("Date", pa.date32()),
    ("DateTime", pa.timestamp("s", tz="UTC")),
    ("DateTime('UTC')", pa.timestamp("s", tz="UTC")),
    ("DateTime64(3, 'UTC')", pa.timestamp("ms", tz="UTC")),
    ("DateTime64(6)", pa.timestamp("us", tz="UTC")),
    ("DateTime64(9, 'UTC')", pa.timestamp("ns", tz="UTC")),
    ("Array(String)", pa.list_(pa.string())),
    ("Array(LowCardinality(String))", pa.list_(pa.string())),
    ("Enum8('a' = 1)", None),
    ("Map(String, UInt64)", None),
])
def test_arrow_type(ch_type, expected):
    assert arrow_type(ch_type) == expected


def test_arrow_schema_refuses_a_column_the_table_lacks():
    with pytest.raises(ValueError, match="nope"):
        arrow_schema({"a": "String"}, ["a", "nope"])


@pytest.mark.parametrize(("rows", "row_bytes", "age_s", "full"), [
    (1, 500, 0.0, False),
    (99, 500, 4.9, False),
    (100, 500, 0.0, True),        # count
    (50, 30_000, 0.0, True),      # 50 x 30 kB >= 1 MB
    (49, 20_000, 0.0, False),
    (1, 500, 5.0, True),          # the oldest row waited long enough
])
def test_buffer_full(rows, row_bytes, age_s, full):
    cfg = SinkConfig(max_rows=100, max_bytes=1_000_000, max_buffer_age_s=5.0)
    assert buffer_full(rows, row_bytes, age_s, cfg) is full


@pytest.mark.parametrize("kw", [{"max_rows": 0}, {"max_bytes": 0}, {"max_buffer_age_s": 0},
                                {"max_retries": -1}, {"initial_backoff_s": -1}])
def test_sink_config_refuses_nonsense(kw):
    with pytest.raises(ValueError):
        SinkConfig(**kw)


_SCHEMA = arrow_schema({"event_id": "UUID", "n": "UInt8", "ts": "DateTime64(3, 'UTC')",
                        "tags": "Array(String)", "s": "String"},
                       ["event_id", "n", "ts", "tags", "s"])
_GOOD = {"event_id": uuid.UUID(int=1), "n": 7, "ts": _NOW, "tags": ["x"], "s": "ok"}


@pytest.mark.parametrize(("column", "value"), [
    ("n", 300),                 # out of UInt8 range: ClickHouse itself would wrap it to 44
    ("n", -1),
    ("n", 2**70),
    ("n", "seven"),
    ("event_id", "not-a-uuid"),
    ("event_id", 12),
    ("ts", "yesterday"),
    ("tags", "x"),              # a string where an array belongs
    ("s", {"a": 1}),
])
def test_build_table_rejects_only_the_unconvertible_row(column, value):
    rows = [dict(_GOOD), {**_GOOD, column: value}, dict(_GOOD)]
    built = build_table(rows, _SCHEMA)
    assert built.kept == [0, 2]
    assert list(built.rejected) == [1]
    assert built.rejected[1][0].startswith(f"column {column}:")
    assert built.table.num_rows == 2


def test_build_table_converts_columns():
    rows = [dict(_GOOD), {"event_id": str(uuid.UUID(int=2)), "n": None}]
    built = build_table(rows, _SCHEMA)
    assert built.rejected == {}
    assert built.table.column("event_id").to_pylist() == [uuid.UUID(int=1).bytes,
                                                           uuid.UUID(int=2).bytes]
    assert built.table.column("n").to_pylist() == [7, None]  # missing -> null -> default
    assert built.table.schema.field("ts").type == pa.timestamp("ms", tz="UTC")


@pytest.mark.parametrize(("row", "partial_id"), [
    ({"event_id": uuid.UUID(int=3), "n": 2**70, "received_at": _NOW}, str(uuid.UUID(int=3))),
    ({"event_id": "e1", "ts": _NOW}, "e1"),
    (("a", "tuple"), None),  # what a failing to_row was given
])
def test_rejected_row_is_a_json_safe_bad_row(row, partial_id):
    bad = rejected_row(row, ["column n: too big"])
    assert (bad["stage"], bad["failure"]) == ("sink", {"type": "store_rejected",
                                                       "messages": ["column n: too big"]})
    assert bad["partial_event"].get("event_id") == partial_id
    assert bad["payload_raw"]
    assert json.loads(json.dumps(bad, default=str)) == json.loads(bad_row_to_json(bad))
    if isinstance(row, dict) and "received_at" in row:
        assert bad["received_at"] == _NOW.isoformat()


def _ch_error(code: int, text: str = "boom") -> DatabaseError:
    return DatabaseError(f"Code: {code}. DB::Exception: {text}", code=code)


@pytest.mark.parametrize(("exc", "kind"), [
    (_ch_error(252, "Too many parts"), TRANSIENT),
    (_ch_error(241, "Memory limit exceeded"), TRANSIENT),
    (_ch_error(159, "Timeout exceeded"), TRANSIENT),
    (_ch_error(210, "Connection reset"), TRANSIENT),
    (DatabaseError("Code: 252. DB::Exception: Too many parts"), TRANSIENT),  # code in text
    (DatabaseError("Received ClickHouse exception, code: 241, server response: x"), TRANSIENT),
    (OperationalError("Error HTTPConnectionPool: Connection refused"), TRANSIENT),
    (ConnectionResetError(104, "reset"), TRANSIENT),
    (TimeoutError("timed out"), TRANSIENT),
    (DatabaseError("HTTP driver received HTTP status 503, server response: busy"), TRANSIENT),
    (_ch_error(376, "Cannot parse uuid"), DATA),
    (_ch_error(691, "Unknown element 'zzz' for enum"), DATA),
    (_ch_error(469, "Constraint violated"), DATA),
    (_ch_error(60, "Unknown table"), FATAL),
    (_ch_error(16, "No such column"), FATAL),
    (DatabaseError("HTTP driver received HTTP status 403"), FATAL),
    (StoreUnavailableError("Code: 252 still failing after 8 retries"), FATAL),
    (ValueError("a bug"), FATAL),
])
def test_classify_error(exc, kind):
    assert classify_error(exc) == kind


@pytest.mark.parametrize(("attempt", "low", "high"), [
    (1, 0.25, 0.5), (2, 0.5, 1.0), (3, 1.0, 2.0), (10, 2.5, 5.0), (60, 2.5, 5.0),
])
def test_backoff_delay_is_exponential_capped_and_jittered(attempt, low, high):
    rng = random.Random(attempt)
    delays = [backoff_delay(attempt, 0.5, 5.0, rng) for _ in range(50)]
    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 1


class _RejectSome:
    """An insert that refuses ranges holding a bad index, like a store refusing a value."""

    def __init__(self, bad: set[int]) -> None:
        self.bad, self.inserted, self.calls = bad, [], 0

    def __call__(self, lo: int, hi: int) -> None:
        self.calls += 1
        hit = self.bad & set(range(lo, hi))
        if hit:
            raise _ch_error(691, f"bad {sorted(hit)}")
        self.inserted += range(lo, hi)


@pytest.mark.parametrize(("n", "bad"), [
    (1, set()), (1, {0}), (10, set()), (10, {0}), (10, {9}), (10, {3, 4}), (10, {0, 5, 9}),
    (7, set(range(7))), (1000, {17, 500, 999}),
])
def test_isolate_rejects_finds_exactly_the_bad_rows(n, bad):
    insert = _RejectSome(bad)
    rejected = isolate_rejects(n, insert, lambda e: classify_error(e) == DATA)
    assert set(rejected) == bad
    assert sorted(insert.inserted) == sorted(set(range(n)) - bad)  # each good row once
    if len(bad) == 1:
        assert insert.calls <= 2 * (n.bit_length() + 1)  # bisection, not row by row


def test_isolate_rejects_raises_other_errors():
    def insert(lo, hi):
        raise _ch_error(60, "Unknown table")

    with pytest.raises(DatabaseError, match="Unknown table"):
        isolate_rejects(4, insert, lambda e: classify_error(e) == DATA)


def test_dedup_token_by_key_ignores_order_and_sees_membership():
    built = build_table([{**_GOOD, "event_id": uuid.UUID(int=i)} for i in range(6)], _SCHEMA)
    table = built.table
    reordered = table.take([5, 3, 1, 0, 2, 4])
    assert dedup_token(table, "event_id") == dedup_token(reordered, "event_id")
    assert dedup_token(table, "event_id") != dedup_token(table.slice(0, 5), "event_id")
    # a slice (bisection) hashes like a fresh table of the same rows
    fresh = build_table([{**_GOOD, "event_id": uuid.UUID(int=i)} for i in (2, 3)], _SCHEMA)
    assert dedup_token(table.slice(2, 2), "event_id") == dedup_token(fresh.table, "event_id")
    assert dedup_token(table.slice(2, 2), None) == dedup_token(fresh.table, None)
    assert dedup_token(table, None) != dedup_token(reordered, None)


def test_failed_rows_of_a_sink_without_that_output_is_empty():
    with TestPipeline(runner="FnApiRunner") as p:
        pcoll = p | beam.Create([1])
        assert failed_rows(pcoll) == []
        assert_that(pcoll, equal_to([1]))


# ---- the PTransform on a real chDB store ------------------------------------------

@pytest.fixture
def events_url(embedded_store_url, embedded_client):
    migrate(embedded_client)
    return f"{embedded_store_url}?database={embedded_client.database}"


def _metric(result, name: str) -> int:
    counters = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return sum(c.committed for c in counters)


def _write(rows, url, expected_failed=(), **kw):
    """Run a pipeline writing rows; assert the failed rows' event ids; return the result."""
    p = TestPipeline(runner="FnApiRunner")
    out = p | beam.Create(rows, reshuffle=False) | WriteToClickHouse(url, "events",
                                                                    EVENT_COLUMNS, **kw)
    assert_that(out[FAILED_ROWS] | beam.Map(lambda b: (b["stage"], b["failure"]["type"],
                                                       b["partial_event"]["event_id"])),
                equal_to([("sink", "store_rejected", i) for i in expected_failed]))
    result = p.run()
    result.wait_until_finish()
    return result


def _counts(client) -> tuple[int, int, int, int]:
    return (client.command("SELECT count() FROM events"),
            client.command("SELECT uniqExact(event_id) FROM events"),
            client.command("SELECT count() FROM events FINAL"),
            client.command("SELECT sum(event_count) FROM event_counts_daily"))


@pytest.mark.integration
def test_writes_every_row_in_batches_with_metrics(events_url, embedded_client):
    result = _write(_rows(25), events_url, max_rows=10)
    assert _counts(embedded_client) == (25, 25, 25, 25)
    assert _metric(result, "events_rows_inserted") == 25
    assert _metric(result, "events_batches") == 3  # 10 + 10 + 5 (finish_bundle)
    assert _metric(result, "events_rows_failed") == 0
    stored = embedded_client.query(
        "SELECT toString(event_id), event_name, page_path, timestamp_corrected FROM events "
        "ORDER BY event_id LIMIT 1").result_rows
    assert stored == [(_ids(1)[0], "page_view", "/p/q", 0)]


@pytest.mark.integration
def test_batches_of_rows_are_written_like_rows(events_url, embedded_client):
    rows = _rows(25)
    rows[4] = {**rows[4], "is_bot": 300}  # still isolated, from within its list
    p = TestPipeline(runner="FnApiRunner")
    out = (p | beam.Create([rows[:7], rows[7:20], rows[20:]], reshuffle=False)
           | WriteToClickHouse(events_url, "events", EVENT_COLUMNS, max_rows=10, batches=True))
    assert_that(out[FAILED_ROWS] | beam.Map(lambda b: b["partial_event"]["event_id"]),
                equal_to([_ids(25)[4]]))
    result = p.run()
    result.wait_until_finish()
    assert _counts(embedded_client) == (24, 24, 24, 24)
    assert _metric(result, "events_batches") == 2  # 7 + 13 (buffer full), then 5


@pytest.mark.integration
def test_unconvertible_row_goes_to_failed_rows_and_the_others_are_inserted(
        events_url, embedded_client):
    rows = _rows(6)
    rows[2] = {**rows[2], "is_bot": 300}                # Python side: not a UInt8
    rows[4] = {**rows[4], "timestamp": "not a time"}
    result = _write(rows, events_url, expected_failed=[_ids(6)[2], _ids(6)[4]])
    assert _counts(embedded_client)[:3] == (4, 4, 4)
    assert _metric(result, "events_rows_failed") == 2
    stored = set(embedded_client.query("SELECT toString(event_id) FROM events").result_columns[0])
    assert stored == set(_ids(6)) - {_ids(6)[2], _ids(6)[4]}


@pytest.mark.integration
def test_rows_the_store_refuses_are_bisected_out(embedded_store_url, embedded_client):
    embedded_client.command(
        "CREATE TABLE kinds (event_id UUID, kind Enum8('a' = 1, 'b' = 2), n UInt32, "
        "CONSTRAINT small CHECK n < 100) ENGINE = MergeTree ORDER BY event_id")
    url = f"{embedded_store_url}?database={embedded_client.database}"
    ids = _ids(40)
    rows = [{"event_id": uuid.UUID(i), "kind": "a", "n": 1} for i in ids]
    rows[7] = {**rows[7], "kind": "zzz"}   # UNKNOWN_ELEMENT_OF_ENUM, found only by the store
    rows[30] = {**rows[30], "n": 1000}     # VIOLATED_CONSTRAINT
    p = TestPipeline(runner="FnApiRunner")
    out = (p | beam.Create(rows, reshuffle=False)
           | WriteToClickHouse(url, "kinds", ("event_id", "kind", "n")))
    assert_that(out[FAILED_ROWS] | beam.Map(lambda b: (b["partial_event"]["event_id"],
                                                       b["failure"]["messages"][0][:10])),
                equal_to([(ids[7], "Code: 691."), (ids[30], "Code: 469.")]))
    p.run().wait_until_finish()
    assert embedded_client.command("SELECT count() FROM kinds") == 38


@pytest.mark.integration
def test_to_row_failure_is_a_failed_row(embedded_store_url, embedded_client):
    embedded_client.command("CREATE TABLE kv (k String, v UInt32) ENGINE = MergeTree ORDER BY k")
    url = f"{embedded_store_url}?database={embedded_client.database}"
    p = TestPipeline(runner="FnApiRunner")
    out = (p | beam.Create([("a", 1), ("b",), ("c", 3)], reshuffle=False)
           | WriteToClickHouse(url, "kv", ("k", "v"), to_row=_kv_row))
    assert_that(out[FAILED_ROWS] | beam.Map(lambda b: b["failure"]["messages"][0][:18]),
                equal_to(["to_row: IndexError"]))
    p.run().wait_until_finish()
    assert embedded_client.query("SELECT k, v FROM kv ORDER BY k").result_rows == [
        ("a", 1), ("c", 3)]


def _kv_row(pair: tuple) -> dict:
    return {"k": pair[0], "v": pair[1]}


@pytest.fixture(params=["embedded", "served"])
def any_store(request) -> tuple[str, object]:
    """(sink URL, client) of a migrated database: in process, or over HTTP."""
    if request.param == "embedded":
        client = request.getfixturevalue("embedded_client")
        url = f"{request.getfixturevalue('embedded_store_url')}?database={client.database}"
    else:
        client = request.getfixturevalue("server_client")
        url = f"{request.getfixturevalue('store_server_url')}/{client.database}"
    migrate(client)
    return url, client


@pytest.mark.integration
def test_retried_bundle_adds_no_visible_duplicates(any_store):
    url, client = any_store
    rows = _rows(30)
    _write(rows, url, max_rows=8)
    # The runner retries a bundle whose inserts had already succeeded: same batches,
    # same tokens, dropped by the store (also in the materialized view's table).
    result = _write(rows, url, max_rows=8)
    assert _counts(client) == (30, 30, 30, 30)
    assert _metric(result, "events_rows_inserted") == 30  # sent, deduplicated by the store


@pytest.mark.integration
def test_replay_batched_differently_is_collapsed_by_final(events_url, embedded_client):
    rows = _rows(32)
    _write(rows, events_url, max_rows=8)
    _write(rows[::-1], events_url, max_rows=8)  # reordered: same batches' ids, same tokens
    assert _counts(embedded_client) == (32, 32, 32, 32)
    _write(rows, events_url, max_rows=7)  # other batch boundaries: other tokens
    stored, distinct, final, daily = _counts(embedded_client)
    assert stored > 32  # the token could not help ...
    assert (distinct, final) == (32, 32)  # ... ReplacingMergeTree read with FINAL does
    assert daily > 32  # (the daily-count view counts such a replay twice)


@pytest.mark.integration
def test_streaming_job_dead_letters_rows_the_events_sink_rejects(events_url, embedded_client):
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.transforms.window import TimestampedValue

    from pipelines.streaming import StreamingOptions, build

    # a store-side rule the validated rows cannot anticipate
    embedded_client.command(
        "ALTER TABLE events ADD CONSTRAINT no_forbidden CHECK event_name != 'forbidden'")
    ids = _ids(3)
    envs = [make_envelope(event(event_id=i, event_name=n), project_id="p1", key_id="k",
                          ip=None, user_agent=None)
            for i, n in zip(ids, ["page_view", "forbidden", "signup"], strict=True)]
    sinks = {
        "events": WriteToClickHouse(events_url, "events", EVENT_COLUMNS, batches=True),
        "invalid": _ExpectBadRows([("sink", "store_rejected", ids[1])]),
        # counts, identities, sessions, completeness are not this test's business
        **{name: beam.Filter(lambda _: False)
           for name in ("counts", "identities", "sessions", "completeness")},
    }
    opts = PipelineOptions(["--watermark_idle_ticks=2"]).view_as(StreamingOptions)
    with TestPipeline(runner="FnApiRunner") as p:
        source = beam.Create(list(enumerate(envs))) | beam.MapTuple(
            lambda t, v: TimestampedValue(v, t))
        build(p, source, sinks, opts)
    stored = embedded_client.query("SELECT toString(event_id) FROM events ORDER BY event_id")
    assert stored.result_columns[0] == [ids[0], ids[2]]


class _ExpectBadRows(beam.PTransform):
    def __init__(self, expected: list[tuple]) -> None:
        super().__init__()
        self._expected = expected

    def expand(self, bad_rows):
        assert_that(bad_rows | beam.Map(lambda b: (b["stage"], b["failure"]["type"],
                                                   b["partial_event"].get("event_id"))),
                    equal_to(self._expected))


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.integration
def test_store_down_past_the_retry_budget_fails_the_bundle():
    url = f"http://127.0.0.1:{_closed_port()}/db"
    p = TestPipeline(runner="FnApiRunner")
    _ = (p | beam.Create(_rows(3), reshuffle=False)
         | WriteToClickHouse(url, "events", EVENT_COLUMNS, max_retries=2,
                             initial_backoff_s=0.01, max_backoff_s=0.02))
    with pytest.raises(Exception, match="still failing after 2 retries"):
        p.run().wait_until_finish()


# ---- a store server that goes away mid-run ---------------------------------------

class _Server:
    """`radixinsight store serve` in a subprocess, restartable on the same port."""

    def __init__(self, path: Path, port: int = 0) -> None:
        self.path, self.log = path, path.parent / "server.log"
        cli = Path(sys.executable).with_name("radixinsight")
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [str(cli), "store", "serve", "--path", str(path), "--port", str(port)],
                stdout=subprocess.PIPE, stderr=log, text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.url = _wait_for_url(self.proc, self.log)
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Beam pickles a Map's arguments: the servers are reached through this module instead.
_SERVERS: dict[str, list[_Server]] = {}
_RESTARTS: dict[str, threading.Thread] = {}


def _bounce_at(row: dict, at: str) -> dict:
    """Stop the store when the row ``at`` passes; restart it in the background."""
    if str(row["event_id"]) == at:
        servers = _SERVERS[at]
        servers[-1].stop()  # down now; back once a new process has opened the store
        _RESTARTS[at] = threading.Thread(
            target=lambda: servers.append(_Server(servers[0].path, servers[0].port)))
        _RESTARTS[at].start()
    return row


@pytest.mark.integration
def test_store_restart_mid_run_is_retried_without_loss_or_duplicates(tmp_path):
    servers = [_Server(tmp_path / "store")]
    try:
        admin = connect(servers[0].url)
        admin.command("CREATE DATABASE sinktest")
        admin.close()
        url = f"{servers[0].url}/sinktest"
        client = connect(url)
        migrate(client)
        client.close()
        rows, at = _rows(200), _ids(200)[60]
        _SERVERS[at] = servers
        p = TestPipeline(runner="FnApiRunner")
        _ = (p | beam.Create(rows, reshuffle=False)
             | beam.Map(_bounce_at, at)
             | WriteToClickHouse(url, "events", EVENT_COLUMNS, max_rows=20,
                                 initial_backoff_s=0.2, max_backoff_s=2.0, max_retries=30))
        result = p.run()
        result.wait_until_finish()
        _RESTARTS.pop(at).join(timeout=60)
        assert len(servers) == 2  # it really went down and came back
        assert _metric(result, "events_retries") >= 1
        client = connect(url)
        assert _counts(client) == (200, 200, 200, 200)
        client.close()
    finally:
        _SERVERS.clear()
        for server in servers:
            if server.proc.poll() is None:
                server.stop()
