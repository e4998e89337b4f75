import apache_beam as beam
import orjson
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.fixtures.events import EID, envelope, event
from transforms.parse import ParseEnvelopes, ParseError, decode_envelope
from transforms.results import BAD


def test_decode_returns_the_envelope_with_the_event_untouched():
    env = decode_envelope(envelope(event()))
    assert env["event"] == event() and env["key_id"] == "k1" and env["v"] == 1


@pytest.mark.parametrize("raw, failure", [
    (b"{not json", "invalid_json"),
    (b"\xff\xfe", "invalid_json"),  # invalid UTF-8
    (b'{"event": {"x": NaN}}', "invalid_json"),
    (b'{"event": {"x": Infinity}}', "invalid_json"),
    (b"[" * 2000 + b"]" * 2000, "invalid_json"),  # nesting deeper than orjson allows
    (b"", "invalid_json"),
    (b"[1,2]", "invalid_envelope"),
    (b'"text"', "invalid_envelope"),
    (orjson.dumps({"v": 1, "event": "x"}), "invalid_envelope"),
    (orjson.dumps({"v": 1}), "invalid_envelope"),
])
def test_bad_input_raises_a_typed_parse_error(raw, failure):
    with pytest.raises(ParseError) as info:
        decode_envelope(raw)
    assert info.value.failure_type == failure and info.value.messages


def test_ptransform_splits_envelopes_and_bad_rows():
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create([envelope(event()), b"garbage"]) | ParseEnvelopes()
        assert_that(out.envelopes | "ids" >> beam.Map(lambda e: e["event"]["event_id"]),
                    equal_to([EID]), label="envelopes")
        assert_that(out[BAD] | "types" >> beam.Map(lambda b: (b["stage"], b["failure"]["type"],
                                                              b["payload_raw"])),
                    equal_to([("parse", "invalid_json", "garbage")]), label="bad")
