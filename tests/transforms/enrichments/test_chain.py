"""The enrichment chain: order, accumulated failures, the PTransform."""

from datetime import UTC, datetime

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from tests.fixtures.geoip import city_record, write_city_db
from transforms.enrichments import (
    EnrichConfig,
    EnrichEvents,
    enrich_row,
    geo,
    modules,
    open_chain,
    user_agent,
)
from transforms.enrichments.base import EnrichmentError
from transforms.results import BAD

ROW = {"event_id": "e1", "project_id": "p", "ip_address": "81.2.69.160", "user_agent": "",
       "page_url": "https://a.example/x", "page_referrer": "", "timezone": "",
       "timestamp": datetime(2026, 11, 25, 9, 30, tzinfo=UTC)}


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    db = write_city_db(tmp_path_factory.mktemp("geo") / "c.mmdb", [
        ("81.2.69.0/24", city_record("JP", "Tokyo", "Asia/Tokyo", ["Tokyo"]))])
    return EnrichConfig({"geo": geo.Config(db_path=str(db))})


def test_run_order_is_one_explicit_list():
    assert [m.NAME for m in modules()] == ["geo", "user_agent", "campaign", "referrer", "time"]


def test_time_uses_the_timezone_geo_found(cfg):
    out = enrich_row(ROW, open_chain(cfg))
    assert (out["country"], out["timezone"], out["local_hour"]) == ("JP", "Asia/Tokyo", 18)
    assert out["referrer_medium"] == "direct" and "geo_timezone" not in out
    assert ROW["timezone"] == "" and "country" not in ROW  # input untouched


def test_failures_of_every_enrichment_are_accumulated(cfg):
    bad = {**ROW, "user_agent": 42, "timestamp": "not a datetime"}
    with pytest.raises(EnrichmentError) as info:
        enrich_row(bad, open_chain(cfg))
    assert "user_agent:" in str(info.value) and "time:" in str(info.value)


def test_disabled_enrichment_is_skipped(cfg):
    chain = open_chain(EnrichConfig({**cfg.configs, "user_agent": user_agent.Config(
        enabled=False)}))
    assert "browser" not in enrich_row(ROW, chain)


def test_unknown_enrichment_name_is_refused():
    with pytest.raises(ValueError, match="unknown enrichments"):
        EnrichConfig({"weather": geo.Config()})


def test_ptransform_routes_failures_to_bad_rows(cfg):
    rows = [ROW, {**ROW, "event_id": "e2", "user_agent": 7}]
    with TestPipeline(runner="FnApiRunner") as p:
        out = p | beam.Create(rows) | EnrichEvents(cfg)
        assert_that(out.rows | "ok" >> beam.Map(lambda r: (r["event_id"], r["country"])),
                    equal_to([("e1", "JP")]), label="rows")
        assert_that(out[BAD] | "bad" >> beam.Map(lambda b: (b["stage"], b["failure"]["type"])),
                    equal_to([("enrich", "enrichment_failed")]), label="bad")
