"""The batch composition's shuffle key: a browser lands in one shard, in every process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipelines.chain import SHARDS, browser_of, shard_of
from tests.fixtures.events import envelope, event
from transforms.parse import decode_envelope
from transforms.sessions import session_key
from transforms.validate import ValidateConfig, validate_envelope

RECEIVED = "2026-11-25T10:00:01+00:00"


@pytest.mark.parametrize("raw", [
    envelope(event()),
    json.dumps(event()).encode(),
    json.dumps(event(user={"user_id": "u9"})).encode(),                # server event
])
def test_browser_of_a_raw_record_is_its_rows_session_key(raw):
    row = validate_envelope(decode_envelope(raw, RECEIVED), ValidateConfig())
    assert browser_of(raw, RECEIVED) == "\x00".join(session_key(row))


@pytest.mark.parametrize("raw", [b"{not json", b"[1]", b'{"v": 1, "event": 3}'])
def test_a_record_that_will_not_parse_has_an_empty_browser(raw):
    assert browser_of(raw, RECEIVED) == ""


def test_shards_are_the_same_in_another_process():
    browsers = ["p1\x00a1", "p1\x00u:é", "p2\x00a1", ""]
    here = [shard_of(b) for b in browsers]
    code = ("import sys, json; from pipelines.chain import shard_of; "
            "print(json.dumps([shard_of(b) for b in json.loads(sys.argv[1])]))")
    there = subprocess.run([sys.executable, "-c", code, json.dumps(browsers)],
                           capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123"}).stdout
    assert json.loads(there.strip().splitlines()[-1]) == here
    assert all(0 <= s < SHARDS for s in here)
