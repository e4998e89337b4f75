import uuid
from datetime import UTC, datetime

import apache_beam as beam
import orjson
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from collector.envelope import make_envelope
from transforms.parse import ParseEnvelopes, ParseError, envelope_to_row, parse_timestamp
from transforms.results import BAD

EID = "6f1c1b7e-9f0a-4c57-8f43-2b6a5b0f8c11"


def event(**over):
    base = {"event_id": EID, "event_name": "page_view", "project_id": "p1",
            "timestamp": "2026-11-25T10:00:00.123Z",
            "user": {"user_id": "u1", "anonymous_id": "a1", "session_id": "s1"},
            "context": {"ip": "203.0.113.9", "user_agent": "UA/1", "locale": "en-GB",
                        "page": {"url": "https://x.example/p/q?utm_source=a", "title": "T",
                                 "referrer": "https://ref.example/"},
                        "app": {"name": "web", "version": "1.2.3"}},
            "properties": {"plan": "pro", "n": 3}}
    base.update(over)
    return base


def env(ev, **kw):
    return make_envelope(ev, project_id="p1", key_id="k1", ip=kw.get("ip", "198.51.100.1"),
                         user_agent=kw.get("ua", "collector-ua"))


def test_envelope_to_row_maps_every_field():
    row = envelope_to_row(env(event()))
    assert row["event_id"] == uuid.UUID(EID)
    assert row["timestamp"] == datetime(2026, 11, 25, 10, 0, 0, 123000, tzinfo=UTC)
    assert (row["user_id"], row["anonymous_id"], row["session_id"]) == ("u1", "a1", "s1")
    assert row["resolved_user_id"] == "u1"
    assert row["ip_address"] == "203.0.113.9"  # the event's own context wins
    assert row["page_path"] == "/p/q"
    assert (row["app_name"], row["app_version"], row["locale"]) == ("web", "1.2.3", "en-GB")
    assert orjson.loads(row["properties"]) == {"plan": "pro", "n": 3}


def test_collector_ip_and_ua_fill_missing_context():
    row = envelope_to_row(env(event(context={}), ip="198.51.100.7", ua="Browser/2"))
    assert (row["ip_address"], row["user_agent"]) == ("198.51.100.7", "Browser/2")
    assert row["resolved_user_id"] == "u1"


def test_anonymous_user_resolves_to_anonymous_id():
    row = envelope_to_row(env(event(user={"anonymous_id": "a9"})))
    assert (row["user_id"], row["resolved_user_id"]) == ("", "a9")


@pytest.mark.parametrize("raw, failure", [
    (b"{not json", "invalid_json"),
    (b"\xff\xfe", "invalid_json"),
    (b"[1,2]", "invalid_envelope"),
    (orjson.dumps({"v": 1, "event": "x"}), "invalid_envelope"),
    (env({k: v for k, v in event().items() if k != "event_name"}), "missing_field"),
    (env(event(event_id="")), "missing_field"),
    (env(event(event_id="not-a-uuid")), "invalid_field"),
    (env(event(timestamp="2026-11-25T10:00:00")), "invalid_field"),  # no offset
    (env(event(timestamp=1732528800)), "invalid_field"),
    (env(event(timestamp="yesterday")), "invalid_field"),
])
def test_bad_input_raises_a_typed_parse_error(raw, failure):
    with pytest.raises(ParseError) as info:
        envelope_to_row(raw)
    assert info.value.failure_type == failure
    assert info.value.messages


def test_parse_timestamp_converts_offsets_to_utc():
    assert parse_timestamp("2026-01-01T02:00:00+02:00") == datetime(2026, 1, 1, tzinfo=UTC)


def test_non_object_properties_become_empty_object():
    assert envelope_to_row(env(event(properties=[1, 2])))["properties"] == "{}"


def test_ptransform_splits_rows_and_bad_rows():
    good, bad = env(event()), b"garbage"
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create([good, bad]) | ParseEnvelopes()
        assert_that(out.rows | "ids" >> beam.Map(lambda r: str(r["event_id"])), equal_to([EID]),
                    label="rows")
        assert_that(out[BAD] | "types" >> beam.Map(lambda b: (b["stage"], b["failure"]["type"],
                                                              b["payload_raw"])),
                    equal_to([("parse", "invalid_json", "garbage")]), label="bad")
