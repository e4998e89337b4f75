"""The fused parse -> validate -> enrich step: one output per input, whatever the input."""

import apache_beam as beam
import orjson
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.events import EID, envelope, event
from transforms.chain import ProcessEvents, ProcessEventsPerBrowser, process_raw
from transforms.clickhouse_sink import RowBatchCoder
from transforms.enrichments import EnrichConfig, open_chain
from transforms.results import BAD
from transforms.validate import ValidateConfig

CHAIN = open_chain(EnrichConfig())
CFG = ValidateConfig()


def test_each_stage_reports_its_own_failures():
    cases = {b"{bad": "parse", envelope(event(event_id="x")): "validate",
             envelope(event(context={"user_agent": 5})): "validate"}  # schema: not a string
    for raw, stage in cases.items():
        ok, out = process_raw(raw, CFG, CHAIN)
        assert not ok and out["stage"] == stage


def test_valid_envelope_is_enriched():
    ok, row = process_raw(envelope(event()), CFG, CHAIN)
    assert ok and str(row["event_id"]) == EID and row["referrer_medium"] == "unknown"
    assert row["utm_source"] == "a" and row["timezone"] == "Europe/London"


def test_bare_event_lines_are_wrapped():
    ok, row = process_raw(orjson.dumps(event()), CFG, CHAIN, "2026-11-25T10:00:00+00:00")
    assert ok and row["received_at"].isoformat() == "2026-11-25T10:00:00+00:00"


FIELD = st.sampled_from(["event_id", "event_name", "project_id", "timestamp", "user",
                         "context"])
VALUE = st.one_of(st.text(max_size=30), st.integers(-(2**63), 2**63 - 1), st.none(),
                  st.dictionaries(st.text(max_size=5), st.text(max_size=30)))


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.dictionaries(FIELD, VALUE).map(orjson.dumps)))
def test_any_input_gives_exactly_one_result(raw):
    ok, out = process_raw(raw, CFG, CHAIN, "2026-11-25T10:00:00+00:00")
    assert isinstance(ok, bool) and isinstance(out, dict)
    assert ok or (out["failure"]["type"] and out["failure"]["messages"])


def test_ptransform_outputs_every_input_once():
    raws = [envelope(event(event_id=f"00000000-0000-4000-8000-00000000000{i}")) for i in range(3)]
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create([*raws, b"nope", b""]) | ProcessEvents()
        assert_that(out.rows | "n" >> beam.Map(lambda r: str(r["event_id"])[-1]),
                    equal_to(["0", "1", "2"]), label="rows")
        assert_that(out[BAD] | "t" >> beam.Map(lambda b: b["failure"]["type"]),
                    equal_to(["invalid_json", "invalid_json"]), label="bad")


def test_gathered_rows_cross_stages_pickled_whole_with_a_deterministic_key():
    # Beam's default coder pickles each UUID and datetime of a row on its own (5x slower)
    p = beam.Pipeline()
    out = p | beam.Create([envelope(event())]) | ProcessEventsPerBrowser()
    coder = beam.coders.registry.get_coder(out.rows.element_type)
    key_coder, value_coder = coder._coders
    assert key_coder.is_deterministic()
    assert isinstance(value_coder, RowBatchCoder)
    key, gathered = coder.decode(coder.encode((("p1", "a1"), [(1, {"event_id": EID})])))
    assert key == ("p1", "a1") and gathered == [(1, {"event_id": EID})]
