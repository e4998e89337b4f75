"""The streaming job: Kafka ``radix.events.raw`` -> parse -> ClickHouse.

``build`` wires transforms between a source and sinks given by the caller, so
tests feed it ``beam.Create``/``TestStream``; only ``run`` connects Kafka and the
store. Bad rows go to ``events_invalid``; a 10 s count per event name goes to
``live_event_counts`` while the job runs.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.runners import runner_args
from transforms.clickhouse_sink import WriteToClickHouse, failed_rows
from transforms.enrichments import EnrichConfig, EnrichEvents
from transforms.kafka_source import KafkaReadConfig, ReadFromKafka
from transforms.live_counts import CountPerWindow
from transforms.parse import ParseEnvelopes
from transforms.results import BAD
from transforms.validate import ValidateConfig, ValidateEvents

EVENT_COLUMNS = (
    "event_id", "event_name", "event_type", "project_id", "timestamp", "client_timestamp",
    "timestamp_corrected", "received_at", "user_id", "anonymous_id", "session_id",
    "resolved_user_id", "ip_address", "user_agent", "locale", "timezone", "page_url",
    "page_path", "page_referrer", "page_title", "app_name", "app_version", "properties",
    # enrichments
    "country", "region", "city", "browser", "browser_version", "os", "os_version",
    "device_type", "device_manufacturer", "device_model", "is_bot", "utm_source", "utm_medium",
    "utm_campaign", "utm_term", "utm_content", "referrer_medium", "referrer_source",
    "referrer_term", "referrer_host", "local_hour", "local_day_of_week", "is_business_hours",
)
COUNT_COLUMNS = ("window_start", "window_end", "project_id", "event_name", "events",
                 "emitted_at")


class StreamingOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--kafka_bootstrap",
                            default=os.environ.get("RADIX_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                            help="Kafka bootstrap servers (env RADIX_KAFKA_BOOTSTRAP)")
        parser.add_argument("--topic_prefix", default=os.environ.get("RADIX_TOPIC_PREFIX", "radix"),
                            help="prefix of the radix.* topic names")
        parser.add_argument("--consumer_group", default="radixinsight-streaming",
                            help="Kafka consumer group whose committed offsets mark progress")
        parser.add_argument("--start_from", default="earliest", choices=["earliest", "latest"],
                            help="where to start a partition with no committed offset")
        parser.add_argument("--store", default=None,
                            help="ClickHouse URL (env RADIX_STORE; default the embedded store)")
        parser.add_argument("--projects", default=os.environ.get("RADIX_PROJECTS"),
                            help="project registry JSON (env RADIX_PROJECTS); events of "
                                 "other projects are dead-lettered")
        parser.add_argument("--geoip_db", default=os.environ.get("RADIX_GEOIP_DB"),
                            help="MaxMind-format City database (env RADIX_GEOIP_DB; none: "
                                 "no geo columns)")
        parser.add_argument("--anonymize_ip", action="store_true",
                            help="store IPs with the last octet / 80 bits zeroed")
        parser.add_argument("--count_window_s", type=int, default=10,
                            help="size of the live event-count window, seconds")
        parser.add_argument("--idle_poll_s", type=float, default=0.2,
                            help="pause before polling a caught-up Kafka partition again")
        parser.add_argument("--read_bundle_s", type=float, default=0.0,
                            help="keep reading a busy partition this long per bundle")


def raw_topic(prefix: str) -> str:
    return f"{prefix}.events.raw"


def validate_config(opts: StreamingOptions) -> ValidateConfig:
    """Project rules from the registry file, read once when the job is built."""
    from pathlib import Path

    from collector.projects import Registry

    if not opts.projects:
        logging.warning("no --projects registry: events of every project are accepted")
        return ValidateConfig()
    path = Path(opts.projects)
    if not path.exists():
        raise FileNotFoundError(f"project registry {path} does not exist")
    return ValidateConfig(projects=Registry.load(path).projects)


def enrich_config(opts: StreamingOptions) -> EnrichConfig:
    from transforms.enrichments import geo

    return EnrichConfig({"geo": geo.Config(db_path=opts.geoip_db, anonymize_ip=opts.anonymize_ip)})


def build(p: beam.Pipeline, source: beam.PTransform, sinks: dict[str, beam.PTransform],
          opts: StreamingOptions) -> None:
    """source yields raw envelope bytes; sinks: ``events``, ``invalid``, ``counts``."""
    parsed = p | "Source" >> source | "ParseEnvelopes" >> ParseEnvelopes()
    valid = parsed.envelopes | "ValidateEvents" >> ValidateEvents(validate_config(opts))
    enriched = valid.rows | "EnrichEvents" >> EnrichEvents(enrich_config(opts))
    rows = enriched.rows
    stored = rows | "WriteEvents" >> sinks["events"]
    # rows the store rejects are dead-lettered like every other bad row
    ((parsed[BAD], valid[BAD], enriched[BAD], *failed_rows(stored))
     | "AllBadRows" >> beam.Flatten() | "WriteInvalid" >> sinks["invalid"])
    rows | "LiveCounts" >> CountPerWindow(opts.count_window_s) | "WriteCounts" >> sinks["counts"]


def kafka_source(opts: StreamingOptions) -> beam.PTransform:
    cfg = KafkaReadConfig(bootstrap_servers=opts.kafka_bootstrap,
                          topics=(raw_topic(opts.topic_prefix),),
                          group_id=opts.consumer_group, start_from=opts.start_from,
                          idle_resume_s=opts.idle_poll_s,
                          bundle_budget_s=opts.read_bundle_s)
    return _KafkaValues(cfg)


class _KafkaValues(beam.PTransform):
    def __init__(self, cfg: KafkaReadConfig) -> None:
        super().__init__()
        self._cfg = cfg

    def expand(self, pbegin):
        return (pbegin | "ReadKafka" >> ReadFromKafka(self._cfg)
                | "Values" >> beam.Map(_record_value))


def _record_value(record: Any) -> bytes:
    return record.value


def store_sinks(store: str | None) -> dict[str, beam.PTransform]:
    from transforms.invalid_rows import INVALID_COLUMNS, invalid_row

    return {
        "events": WriteToClickHouse(store, "events", EVENT_COLUMNS),
        "invalid": WriteToClickHouse(store, "events_invalid", INVALID_COLUMNS,
                                     to_row=invalid_row),
        "counts": WriteToClickHouse(store, "live_event_counts", COUNT_COLUMNS),
    }


def run(argv: list[str] | None = None) -> None:
    """Run until cancelled (Ctrl-C or SIGTERM)."""
    argv = runner_args(list(sys.argv[1:] if argv is None else argv), streaming=True)
    opts = PipelineOptions(argv).view_as(StreamingOptions)
    with beam.Pipeline(options=opts) as p:
        build(p, kafka_source(opts), store_sinks(opts.store), opts)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    run()
