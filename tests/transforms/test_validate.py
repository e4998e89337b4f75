import uuid
from datetime import UTC, datetime, timedelta

import apache_beam as beam
import orjson
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.projects import Project
from tests.fixtures.events import EID, envelope, event
from transforms.event_types import categorize
from transforms.parse import ParseError, decode_envelope
from transforms.results import BAD
from transforms.validate import (
    ValidateConfig,
    ValidateEvents,
    ValidationError,
    corrected_timestamp,
    validate_envelope,
)

PROJECTS = {
    "p1": Project("p1", event_types={"checkout": "lifecycle"},
                  property_schemas={"purchase": {
                      "type": "object", "required": ["amount"],
                      "properties": {"amount": {"type": "number"},
                                     "currency": {"type": "string", "maxLength": 3}}}}),
}
CFG = ValidateConfig(projects=PROJECTS)
RECEIVED = datetime(2026, 11, 25, 10, 0, 1, tzinfo=UTC)


def check(ev, cfg=CFG, **kw):
    return validate_envelope(decode_envelope(envelope(ev, received_at=RECEIVED, **kw)), cfg)


def failure(ev, cfg=CFG, **kw):
    with pytest.raises(ValidationError) as info:
        check(ev, cfg, **kw)
    return info.value


def test_valid_event_becomes_a_full_row():
    row = check(event())
    assert row["event_id"] == uuid.UUID(EID)
    assert row["timestamp"] == datetime(2026, 11, 25, 10, 0, 0, 123000, tzinfo=UTC)
    assert row["client_timestamp"] == row["timestamp"] and row["timestamp_corrected"] == 0
    assert row["received_at"] == RECEIVED
    assert (row["user_id"], row["anonymous_id"], row["session_id"]) == ("u1", "a1", "s1")
    assert row["resolved_user_id"] == "u1"
    assert row["ip_address"] == "203.0.113.9"  # the event's own context wins
    assert row["page_path"] == "/p/q" and row["timezone"] == "Europe/London"
    assert (row["app_name"], row["app_version"], row["locale"]) == ("web", "1.2.3", "en-GB")
    assert row["event_type"] == "page"
    assert orjson.loads(row["properties"]) == {"plan": "pro", "n": 3}


def test_collector_ip_and_ua_fill_missing_context():
    row = check(event(context={}), ip="198.51.100.7", ua="Browser/2")
    assert (row["ip_address"], row["user_agent"]) == ("198.51.100.7", "Browser/2")


def test_anonymous_user_resolves_to_anonymous_id():
    row = check(event(user={"anonymous_id": "a9", "user_id": None}))
    assert (row["user_id"], row["resolved_user_id"]) == ("", "a9")


@pytest.mark.parametrize("over, failure_type", [
    ({"event_name": None}, "schema_violation"),
    ({"event_name": ""}, "schema_violation"),
    ({"event_name": 42}, "schema_violation"),
    ({"timestamp": 1732528800}, "schema_violation"),
    ({"properties": [1, 2]}, "schema_violation"),
    ({"user": "u1"}, "schema_violation"),
    ({"context": {"page": {"url": 5}}}, "schema_violation"),
    ({"event_id": "not-a-uuid"}, "invalid_event_id"),
    ({"event_id": EID.replace("-", "")}, "invalid_event_id"),  # only the canonical form
    ({"timestamp": "2026-11-25T10:00:00"}, "invalid_timestamp"),  # no offset
    ({"timestamp": "yesterday"}, "invalid_timestamp"),
    ({"timestamp": "2026-02-30T00:00:00Z"}, "invalid_timestamp"),
    ({"project_id": "nope"}, "unknown_project"),
    ({"user": {}}, "missing_user"),
    ({"user": {"user_id": "", "anonymous_id": None}}, "missing_user"),
    ({"event_name": "purchase", "properties": {"currency": "EUR"}},
     "property_schema_violation"),
    ({"event_name": "purchase", "properties": {"amount": "ten"}},
     "property_schema_violation"),
    ({"properties": {"blob": "x" * 110_000}}, "event_too_large"),
])
def test_every_rule_has_a_stable_failure_type(over, failure_type):
    err = failure(event(**over))
    assert err.failure_type == failure_type
    assert err.messages and all(isinstance(m, str) for m in err.messages)


def test_failures_are_accumulated():
    err = failure(event(event_id="bad", timestamp="never", project_id="nope", user={}))
    assert err.failure_type == "invalid_event_id"
    assert len(err.messages) == 4


def test_property_schema_accepts_conforming_properties():
    row = check(event(event_name="purchase", properties={"amount": 9.5, "currency": "EUR"}))
    assert row["event_type"] == "lifecycle"


def test_without_a_registry_every_project_is_accepted():
    assert check(event(project_id="anything"), ValidateConfig())["project_id"] == "anything"


def test_deeply_nested_properties_and_unicode_are_kept():
    props = {"a": {"b": {"c": {"d": {"e": [1, {"f": "ünïcødé ✓"}]}}}}}
    assert orjson.loads(check(event(properties=props))["properties"]) == props


def test_ipv6_address_is_kept():
    assert check(event(context={"ip": "2001:db8::1"}))["ip_address"] == "2001:db8::1"


# --- clock skew -----------------------------------------------------------------
T = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("ts, sent, expected", [
    (T - timedelta(hours=2), None, T - timedelta(hours=2)),  # past: kept (late data)
    (T + timedelta(minutes=5), None, T + timedelta(minutes=5)),  # within the skew
    (T + timedelta(hours=3), T + timedelta(hours=3, seconds=2),  # clock 3 h ahead
     T - timedelta(seconds=2)),
    (T + timedelta(days=400), None, T),  # no sent_at: received_at
    (T + timedelta(hours=3), T - timedelta(days=9), T),  # nonsense sent_at: received_at
])
def test_corrected_timestamp(ts, sent, expected):
    assert corrected_timestamp(ts, T, sent, 600) == expected


def test_future_event_is_corrected_and_recorded():
    future = RECEIVED + timedelta(hours=2)
    sent = future + timedelta(seconds=1)
    row = check(event(timestamp=future.isoformat()), sent_at=sent.isoformat())
    assert row["timestamp"] == RECEIVED - timedelta(seconds=1)
    assert row["client_timestamp"] == future and row["timestamp_corrected"] == 1


# --- event types ----------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("page_view", "page"), ("screen_view", "page"), ("$pageview", "page"),
    ("button_click", "action"), ("form_submit", "action"), ("link_click", "action"),
    ("signup_started", "lifecycle"), ("signup_completed", "lifecycle"),
    ("onboarding_step_1", "lifecycle"), ("trial_started", "lifecycle"),
    ("api_call", "system"), ("error_occurred", "system"), ("performance_metric", "system"),
    ("report_exported", "custom"), ("", "custom"),
])
def test_categorize(name, expected):
    assert categorize(name) == expected


def test_categorize_project_override_wins():
    assert categorize("page_view", {"page_view": "custom"}) == "custom"


# --- never raises anything else, every input comes out once ----------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False,
                                                         allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)
event_like = st.fixed_dictionaries({}, optional={
    "event_id": st.sampled_from([EID, str(uuid.uuid4()), "x", ""]) | json_values,
    "event_name": st.sampled_from(["page_view", "purchase", ""]) | json_values,
    "project_id": st.sampled_from(["p1", "nope"]) | json_values,
    "timestamp": st.sampled_from(["2026-11-25T10:00:00Z", "2026-11-25T10:00:00",
                                  "9999-12-31T23:59:59+14:00"]) | json_values,
    "user": st.fixed_dictionaries({}, optional={"user_id": json_values,
                                                "anonymous_id": json_values}) | json_values,
    "context": json_values, "properties": json_values,
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(event_like, json_values), st.one_of(st.none(), st.text(max_size=40)))
def test_any_json_gives_a_row_or_a_validation_error(ev, sent_at):
    raw = orjson.dumps({"v": 1, "received_at": RECEIVED.isoformat(), "sent_at": sent_at,
                        "event": ev})
    try:
        env = decode_envelope(raw)
    except ParseError:
        return
    try:
        row = validate_envelope(env, CFG)
    except ValidationError as err:
        assert err.failure_type and err.messages
    else:
        assert isinstance(row["event_id"], uuid.UUID) and row["project_id"] == "p1"


def test_ptransform_outputs_every_input_exactly_once():
    good = [event(event_id=str(uuid.uuid4())) for _ in range(5)]
    bad = [event(event_id="x"), event(project_id="nope")]
    envs = [decode_envelope(envelope(e)) for e in good + bad]
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create(envs) | ValidateEvents(CFG)
        assert_that(out.rows | "ids" >> beam.Map(lambda r: str(r["event_id"])),
                    equal_to([e["event_id"] for e in good]), label="rows")
        assert_that(out[BAD] | "types" >> beam.Map(lambda b: (b["stage"], b["failure"]["type"])),
                    equal_to([("validate", "invalid_event_id"),
                              ("validate", "unknown_project")]), label="bad")
