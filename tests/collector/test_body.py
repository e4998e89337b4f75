"""Body checks: media type, encoding, gzip limits, JSON shape."""

import gzip

import orjson
import pytest

from collector.body import check_content_type, decode_body, gunzip, is_gzip, parse_events
from collector.errors import RejectedError


def status_of(fn, *args, **kw) -> int:
    with pytest.raises(RejectedError) as info:
        fn(*args, **kw)
    return info.value.status


@pytest.mark.parametrize("value", ["application/json", "application/json; charset=utf-8",
                                   "text/plain;charset=UTF-8", "TEXT/PLAIN",
                                   'text/plain; charset="utf8"'])
def test_accepted_content_types(value):
    check_content_type(value)


@pytest.mark.parametrize("value", [None, "", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "text/plain; charset=latin-1",
                                   "application/json; charset=utf-16"])
def test_refused_content_types_are_415(value):
    assert status_of(check_content_type, value) == 415


@pytest.mark.parametrize("value, gz", [(None, False), ("identity", False), ("gzip", True),
                                       ("GZIP", True), ("x-gzip", True)])
def test_content_encodings(value, gz):
    assert is_gzip(value) is gz


@pytest.mark.parametrize("value", ["br", "deflate", "gzip, br"])
def test_other_encodings_are_415(value):
    assert status_of(is_gzip, value) == 415


def test_gunzip_round_trip_and_concatenated_members():
    assert gunzip(gzip.compress(b"[1,") + gzip.compress(b"2]"), 100) == b"[1,2]"


def test_gzip_bomb_is_refused_without_inflating_it():
    bomb = gzip.compress(b"0" * 50_000_000)  # ~50 KB on the wire
    assert len(bomb) < 100_000
    assert status_of(gunzip, bomb, 1024 * 1024) == 413


@pytest.mark.parametrize("data", [b"not gzip", gzip.compress(b"[1]")[:-6]])
def test_corrupt_or_truncated_gzip_is_400(data):
    assert status_of(gunzip, data, 1000) == 400


def test_limits_before_and_after_decompression():
    raw = gzip.compress(b" " * 5000)
    assert status_of(decode_body, raw, True, max_body_bytes=len(raw) - 1,
                     max_batch_bytes=10_000) == 413
    assert status_of(decode_body, raw, True, max_body_bytes=10_000, max_batch_bytes=4999) == 413
    assert decode_body(raw, True, max_body_bytes=10_000, max_batch_bytes=5000) == b" " * 5000
    assert status_of(decode_body, b"x" * 11, False, max_body_bytes=100, max_batch_bytes=10) == 413


def test_array_or_single_object():
    assert parse_events(b'[{"a":1},{"b":2}]', 10) == [{"a": 1}, {"b": 2}]
    assert parse_events(b'{"a":1}', 10) == [{"a": 1}]


@pytest.mark.parametrize("body, status", [
    (b"{nope", 400), (b'"a string"', 400), (b"[1, 2]", 400), (b"[]", 400), (b"null", 400),
    (b'[{"a":1}, []]', 400),
    (b'[{"s":"\xff"}]', 400),  # not UTF-8
    (b'[{"s":"\\ud800"}]', 400),  # a lone surrogate cannot be re-encoded as UTF-8
    (b"\xef\xbb\xbf[{}]", 400),  # a BOM is not JSON
    (orjson.dumps([{}] * 11), 413),
])
def test_malformed_or_oversized_bodies(body, status):
    assert status_of(parse_events, body, 10) == status
