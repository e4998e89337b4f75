"""Options shared by several jobs, each defined once.

Beam parses every ``PipelineOptions`` subclass into one parser, so two jobs that
declared the same flag would break each other as soon as both are imported.
"""

from __future__ import annotations

import os
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from transforms.dedup import DEFAULT_WINDOW_S
from transforms.kafka_source import KafkaReadConfig


class KafkaSourceOptions(PipelineOptions):
    """Where the streaming and archive jobs read ``radix.events.raw``."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--kafka_bootstrap",
                            default=os.environ.get("RADIX_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                            help="Kafka bootstrap servers (env RADIX_KAFKA_BOOTSTRAP)")
        parser.add_argument("--topic_prefix", default=os.environ.get("RADIX_TOPIC_PREFIX", "radix"),
                            help="prefix of the radix.* topic names")
        parser.add_argument("--consumer_group", default=None,
                            help="Kafka consumer group whose committed offsets mark progress "
                                 "(default: radixinsight-<job>; each job needs its own)")
        parser.add_argument("--start_from", default="earliest", choices=["earliest", "latest"],
                            help="where to start a partition with no committed offset")
        parser.add_argument("--idle_poll_s", type=float, default=0.2,
                            help="pause before polling a caught-up Kafka partition again")
        parser.add_argument("--read_bundle_s", type=float, default=0.0,
                            help="keep reading a busy partition this long per bundle")


class ChainOptions(PipelineOptions):
    """The event chain's settings (pipelines/chain.py), for the stream and the backfill."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
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
        parser.add_argument("--dedup_window_s", type=float, default=DEFAULT_WINDOW_S,
                            help="how long an event_id is remembered to drop its copies")
        parser.add_argument("--session_gap_s", type=float, default=1800,
                            help="inactivity that ends a session, seconds")
        parser.add_argument("--session_lateness_s", type=float, default=3600,
                            help="how far behind the watermark an event may still change "
                                 "its session; later ones are counted and left out")


def raw_topic(prefix: str) -> str:
    return f"{prefix}.events.raw"


def kafka_read_config(opts: PipelineOptions, default_group: str) -> KafkaReadConfig:
    """The raw topic's reader for a job; it never commits offsets itself: each job commits
    once its output is durable (the stream after the store, the archive after the files)."""
    kafka = opts.view_as(KafkaSourceOptions)
    return KafkaReadConfig(bootstrap_servers=kafka.kafka_bootstrap,
                           topics=(raw_topic(kafka.topic_prefix),),
                           group_id=kafka.consumer_group or default_group,
                           start_from=kafka.start_from, idle_resume_s=kafka.idle_poll_s,
                           bundle_budget_s=kafka.read_bundle_s, commit_offsets=False)
