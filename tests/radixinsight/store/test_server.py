"""The store server, driven by an unmodified clickhouse-connect client."""

from __future__ import annotations

import datetime as dt
import threading

import clickhouse_connect
import pandas as pd
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from radixinsight.store import connect

pytestmark = pytest.mark.integration

_TABLE = ("CREATE TABLE t (id UInt64, name String, ts DateTime64(3, 'UTC'), "
          "tag LowCardinality(String)) ENGINE = MergeTree ORDER BY id")
_COLS = ["id", "name", "ts", "tag"]
_TS = dt.datetime(2026, 1, 2, 3, 4, 5, 678000)


def _rows(start: int, n: int) -> list[list]:
    return [[i, f"n{i}", _TS, "a" if i % 2 else "b"] for i in range(start, start + n)]


def test_ping(server_client):
    assert server_client.ping()


def test_command_runs_ddl_and_returns_tsv_values(server_client):
    server_client.command(_TABLE)
    assert server_client.command("SELECT 1") == 1
    assert server_client.command("SELECT 'a', 2") == ["a", "2"]
    assert server_client.command("EXISTS TABLE t") == 1


@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip", False])
def test_insert_native_with_each_compression(store_server_url, server_client, compress):
    server_client.command(_TABLE)
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=int(store_server_url.rsplit(":", 1)[1]),
        database=server_client.database, compress=compress)
    summary = client.insert("t", _rows(0, 3), column_names=_COLS)
    assert summary.written_rows == 3
    assert client.query("SELECT id, name, ts, tag FROM t ORDER BY id").result_rows == [
        (0, "n0", _TS, "b"), (1, "n1", _TS, "a"), (2, "n2", _TS, "b")]


def test_insert_of_many_lz4_frames_keeps_every_row(server_client):
    # clickhouse-connect cuts inserts into ~2 MB blocks, one lz4 frame each.
    server_client.command(_TABLE)
    n = 300_000
    summary = server_client.insert("t", _rows(0, n), column_names=_COLS)
    assert summary.written_rows == n
    assert server_client.command("SELECT count(), sum(id) FROM t") == [str(n), str(sum(range(n)))]


def test_insert_arrow_and_df(server_client):
    server_client.command(_TABLE)
    table = pa.table({"id": pa.array([1, 2], pa.uint64()), "name": ["x", "y"],
                      "ts": pa.array([_TS, _TS], pa.timestamp("ms", tz="UTC")), "tag": ["a", "b"]})
    assert server_client.insert_arrow("t", table).written_rows == 2
    df = pd.DataFrame({"id": [3], "name": ["z"], "ts": [_TS], "tag": ["c"]})
    server_client.insert_df("t", df)
    assert server_client.command("SELECT groupArray(name) FROM (SELECT name FROM t ORDER BY id)") \
        == "['x','y','z']"


def test_query_df_arrow_and_parameters(server_client):
    server_client.command(_TABLE)
    server_client.insert("t", _rows(0, 10), column_names=_COLS)
    df = server_client.query_df("SELECT id, tag FROM t WHERE id < {n:UInt64} ORDER BY id",
                                parameters={"n": 3})
    assert df["id"].tolist() == [0, 1, 2]
    assert df["tag"].tolist() == ["b", "a", "b"]
    assert server_client.query_arrow("SELECT * FROM t").num_rows == 10


def test_long_bind_parameter_sent_as_multipart_form(server_client):
    value = "x" * 10_000  # over clickhouse-connect's URL limit: it switches to a form body
    assert server_client.query("SELECT length({v:String})", parameters={"v": value}) \
        .result_rows == [(10_000,)]


def test_settings_travel_per_query(server_client):
    got = server_client.command("SELECT getSetting('max_threads')", settings={"max_threads": 1})
    assert got == 1
    assert server_client.command("SELECT getSetting('max_threads')") != 1


def test_errors_raise_database_error_with_the_engine_message(server_client):
    with pytest.raises(DatabaseError, match="UNKNOWN_IDENTIFIER") as err:
        server_client.query("SELECT no_such_column")
    assert err.value.code == 47
    with pytest.raises(DatabaseError, match="SYNTAX_ERROR"):
        server_client.command("SELEC 1")
    with pytest.raises(DatabaseError, match=r"UNKNOWN_TABLE|does not exist"):
        server_client.insert("missing", [[1]], column_names=["x"], column_type_names=["UInt8"])
    assert server_client.command("SELECT 2") == 2  # the connection survives errors


def test_concurrent_clients(store_server_url, server_client):
    server_client.command(_TABLE)
    url = f"{store_server_url}/{server_client.database}"
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            client = connect(url)
            for i in range(5):
                client.insert("t", _rows(offset + i * 100, 100), column_names=_COLS)
                client.query("SELECT count() FROM t")
            client.close()
        except BaseException as ex:  # collected and asserted in the main thread
            errors.append(ex)

    threads = [threading.Thread(target=work, args=(n * 10_000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert server_client.command("SELECT count() FROM t") == 2000
