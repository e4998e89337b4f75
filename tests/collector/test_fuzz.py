"""Fuzzing a live collector: schemathesis from the OpenAPI document, hypothesis on bodies.

Both check that no answer is a 5xx (a 503 only with Retry-After), that answers match the
document, and that every accepted event is in Kafka exactly once, untouched.
"""

from __future__ import annotations

import gzip
import uuid

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi import checks as oa_checks

from collector.app import OPENAPI_PATH, CollectorConfig
from collector.projects import Registry
from collector.ratelimit import RateLimits
from radixinsight.procs import free_port
from tests.fixtures.collector import KEY, read_topic, running_collector, write_registry

pytestmark = pytest.mark.integration

schema = schemathesis.openapi.from_path(str(OPENAPI_PATH))


@pytest.fixture(scope="module")
def live(kafka_broker, tmp_path_factory):
    """(base URL, topic, accepted-events tally) of a collector without rate limits."""
    path = write_registry(tmp_path_factory.mktemp("fuzz") / "projects.json")
    prefix = f"fuzz{free_port()}"
    cfg = CollectorConfig(kafka_broker.bootstrap, Registry.load(path), topic_prefix=prefix,
                          rate_limits=RateLimits(0, 0, 0, 0))
    tally = {"accepted": 0, "events": []}
    with running_collector(cfg) as url:
        yield url.removesuffix("/collect"), f"{prefix}.events.raw", tally


def no_unexplained_5xx(resp: requests.Response) -> None:
    assert resp.status_code < 500 or (resp.status_code == 503 and "Retry-After" in resp.headers), \
        f"{resp.status_code}: {resp.text[:300]}"


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_contract(case, live):
    base, _, tally = live
    # The collector is thin by design: it accepts events the pipeline will reject, so the
    # "schema-invalid data must be refused" and "valid data must be accepted" checks
    # (a valid event can still be for another project: 403) do not apply.
    resp = case.call_and_validate(
        base_url=base, headers={"X-API-Key": KEY},
        excluded_checks=[oa_checks.negative_data_rejection, oa_checks.positive_data_acceptance,
                         oa_checks.ignored_auth, oa_checks.missing_required_header])
    no_unexplained_5xx(resp)
    if resp.status_code == 202:
        tally["accepted"] += resp.json()["accepted"]


json_scalars = (st.none() | st.booleans() | st.text(max_size=20)
                | st.integers(min_value=-(2**63), max_value=2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
events = st.dictionaries(st.text(max_size=10).filter(lambda k: k not in (
    "event_id", "project_id")), json_values, max_size=6)


@given(batch=st.lists(events, min_size=1, max_size=12), gzipped=st.booleans(),
       content_type=st.sampled_from(["application/json", "text/plain;charset=UTF-8"]),
       as_object=st.booleans())
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_well_formed_batch_is_accepted_whole(live, batch, gzipped, content_type, as_object):
    base, _, tally = live
    batch = [{**e, "event_id": str(uuid.uuid4())} for e in batch]
    doc = batch[0] if as_object else batch
    body = orjson.dumps(doc)
    headers = {"Content-Type": content_type, "X-API-Key": KEY}
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    resp = requests.post(f"{base}/collect", data=body, headers=headers, timeout=30)
    no_unexplained_5xx(resp)
    sent = [doc] if as_object else batch
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": len(sent)}
    tally["accepted"] += len(sent)
    tally["events"].extend(sent)


@given(body=st.binary(max_size=2000), gzipped=st.booleans())
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
def test_arbitrary_bytes_get_a_clear_4xx_or_202(live, body, gzipped):
    base, _, tally = live
    headers = {"Content-Type": "application/json", "X-API-Key": KEY}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    resp = requests.post(f"{base}/collect", data=body, headers=headers, timeout=30)
    no_unexplained_5xx(resp)
    assert resp.status_code in (202, 400, 403, 413), resp.text
    if resp.status_code == 202:
        tally["accepted"] += resp.json()["accepted"]
    else:
        assert resp.json()["error"]


def test_every_accepted_event_is_in_kafka_exactly_once(kafka_broker, live):
    """Runs after the fuzzers above (file order): the topic holds what was acknowledged."""
    _, topic, tally = live
    assert tally["accepted"] > 0
    records = read_topic(kafka_broker.bootstrap, topic, timeout_s=8)
    assert len(records) == tally["accepted"]  # none lost, none written twice
    stored = {}
    for rec in records:
        event = orjson.loads(rec.value)["event"]
        if "event_id" in event:
            stored.setdefault(event["event_id"], []).append(event)
    for sent in tally["events"]:
        assert stored[sent["event_id"]] == [sent]  # once, and untouched
