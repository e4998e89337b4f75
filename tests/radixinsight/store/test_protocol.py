"""Pure HTTP-protocol helpers of the store server."""

from __future__ import annotations

import gzip

import lz4.frame
import pytest

from radixinsight.store.protocol import (
    decompress_stream,
    find_insert_data,
    parse_params,
    split_insert_format,
    trailing_format,
)


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 7, 1 << 20])
def test_lz4_body_of_several_frames_decodes_fully(size):
    frames = b"".join(lz4.frame.compress(bytes([n]) * 5000) for n in range(3))
    out = b"".join(decompress_stream(_split(frames, size), "lz4"))
    assert out == b"\x00" * 5000 + b"\x01" * 5000 + b"\x02" * 5000


def test_gzip_and_identity():
    assert b"".join(decompress_stream([gzip.compress(b"abc")], "gzip")) == b"abc"
    assert b"".join(decompress_stream([b"a", b"b"], None)) == b"ab"


@pytest.mark.parametrize(("sql", "expected"), [
    ("INSERT INTO t (`a`, `format`) FORMAT Native", ("INSERT INTO t (`a`, `format`)", "Native")),
    ("insert into db.t format Arrow", ("insert into db.t", "Arrow")),
    ("INSERT INTO t SELECT 1", None),
    ("SELECT 1 FORMAT Native", None),
    ("INSERT INTO t VALUES ('x FORMAT Native')", None),
])
def test_split_insert_format(sql, expected):
    assert split_insert_format(sql) == expected


def test_find_insert_data_skips_quoted_format_words():
    body = b"INSERT INTO t (`FORMAT x`) FORMAT Native\n\x01\x02FORMAT"
    assert body[find_insert_data(body):] == b"\x01\x02FORMAT"
    assert find_insert_data(b"SELECT 1 FORMAT TSV\n") is None


def test_trailing_format_and_params():
    assert trailing_format("SELECT 1\n FORMAT Native") == "Native"
    assert trailing_format("SELECT 'FORMAT Native'") is None
    req = parse_params({"query": "q", "database": "d", "session_id": "s", "max_threads": "1",
                        "param_x": "5", "wait_end_of_query": "1"})
    assert (req.database, req.session_id, req.settings, req.bind_params) == \
        ("d", "s", {"max_threads": "1"}, {"x": "5"})
