"""The streaming job: Kafka ``radix.events.raw`` -> the event chain -> ClickHouse.

parse -> validate -> dedup -> enrich -> identity -> sessions (``pipelines/chain.py``),
written to ``events``, ``identities``, ``sessions`` and ``completeness``; bad rows go
to ``events_invalid`` and the ``radix.events.dlq`` topic; a 10 s count per event name
goes to ``live_event_counts`` while the job runs.

``build`` wires transforms between a source and sinks given by the caller, so
tests feed it ``beam.Create``/``TestStream``; only ``run`` connects Kafka and the
store.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.chain import ChainConfig, ProcessRawEvents
from pipelines.runners import runner_args
from transforms.clickhouse_sink import WriteToClickHouse
from transforms.enrichments import EnrichConfig
from transforms.event_time import WATERMARK_COLUMNS
from transforms.identity import IDENTITY_COLUMNS
from transforms.kafka_source import KafkaReadConfig, ReadFromKafka
from transforms.live_counts import CountPerWindow
from transforms.sessions import SESSION_COLUMNS, SessionConfig
from transforms.validate import ValidateConfig

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
        parser.add_argument("--dedup_window_s", type=float, default=24 * 3600,
                            help="how long an event_id is remembered to drop its copies")
        parser.add_argument("--session_gap_s", type=float, default=1800,
                            help="inactivity that ends a session, seconds")
        parser.add_argument("--session_lateness_s", type=float, default=3600,
                            help="how far behind the watermark an event may still change "
                                 "its session; later ones are counted and left out")
        parser.add_argument("--watermark_tick_s", type=float, default=10,
                            help="how often the completeness watermark is published")
        parser.add_argument("--watermark_idle_ticks", type=int, default=0,
                            help="stop ticking after this many ticks without events (0: "
                                 "never; bounded test inputs need it to end)")
        parser.add_argument("--session_early_s", type=float, default=0,
                            help="also emit open sessions every this many seconds (0: only "
                                 "when they close)")
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


def enrich_config(opts: Any) -> EnrichConfig:
    from transforms.enrichments import geo

    return EnrichConfig({"geo": geo.Config(db_path=opts.geoip_db, anonymize_ip=opts.anonymize_ip)})


def chain_config(opts: StreamingOptions) -> ChainConfig:
    return ChainConfig(
        validate=validate_config(opts), enrich=enrich_config(opts),
        dedup_window_s=opts.dedup_window_s,
        sessions=SessionConfig(gap_s=opts.session_gap_s,
                               allowed_lateness_s=opts.session_lateness_s,
                               gate_tick_s=opts.watermark_tick_s,
                               gate_max_idle_ticks=opts.watermark_idle_ticks or None,
                               early_s=opts.session_early_s))


def build(p: beam.Pipeline, source: beam.PTransform, sinks: dict[str, beam.PTransform],
          opts: StreamingOptions) -> None:
    """source yields raw envelope bytes; sinks by table: ``events``, ``invalid``,
    ``counts``, ``identities``, ``sessions``, ``completeness`` (and optionally ``dlq``)."""
    out = p | "Source" >> source | "ProcessEvents" >> ProcessRawEvents(chain_config(opts),
                                                                       streaming=True)
    out["events"] | "WriteEvents" >> sinks["events"]
    out["bad"] | "WriteInvalid" >> sinks["invalid"]
    if "dlq" in sinks:
        out["bad"] | "WriteDeadLetters" >> sinks["dlq"]
    out["identities"] | "WriteIdentities" >> sinks["identities"]
    out["sessions"] | "WriteSessions" >> sinks["sessions"]
    out["completeness"] | "WriteCompleteness" >> sinks["completeness"]
    (out["events"] | "LiveCounts" >> CountPerWindow(opts.count_window_s)
     | "WriteCounts" >> sinks["counts"])


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
        "identities": WriteToClickHouse(store, "identities", IDENTITY_COLUMNS),
        "sessions": WriteToClickHouse(store, "sessions", SESSION_COLUMNS),
        "completeness": WriteToClickHouse(store, "completeness", WATERMARK_COLUMNS),
        "counts": WriteToClickHouse(store, "live_event_counts", COUNT_COLUMNS),
    }


def dlq_topic(prefix: str) -> str:
    return f"{prefix}.events.dlq"


def run(argv: list[str] | None = None) -> None:
    """Run until cancelled (Ctrl-C or SIGTERM)."""
    from transforms.invalid_rows import dlq_record
    from transforms.kafka_sink import WriteToKafka

    argv = runner_args(list(sys.argv[1:] if argv is None else argv), streaming=True)
    opts = PipelineOptions(argv).view_as(StreamingOptions)
    sinks = store_sinks(opts.store)
    sinks["dlq"] = WriteToKafka(opts.kafka_bootstrap, dlq_topic(opts.topic_prefix), dlq_record)
    with beam.Pipeline(options=opts) as p:
        build(p, kafka_source(opts), sinks, opts)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    run()
