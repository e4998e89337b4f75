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
import sys
from dataclasses import replace
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipelines.chain import ChainConfig, ProcessRawEvents, chain_config
from pipelines.options import ChainOptions, KafkaSourceOptions, kafka_read_config
from pipelines.runners import runner_args
from transforms.clickhouse_sink import WriteToClickHouse, failed_rows
from transforms.event_time import WATERMARK_COLUMNS
from transforms.identity import IDENTITY_COLUMNS
from transforms.kafka_source import KafkaReadConfig, ReadFromKafka
from transforms.live_counts import CountPerWindow
from transforms.offsets import reports
from transforms.results import source_of
from transforms.sessions import SESSION_COLUMNS

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
    """The streaming job's own flags; see also KafkaSourceOptions and ChainOptions."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        parser.add_argument("--count_window_s", type=int, default=10,
                            help="size of the live event-count window, seconds")
        parser.add_argument("--watermark_tick_s", type=float, default=10,
                            help="how often the completeness watermark is published")
        parser.add_argument("--watermark_max_step_s", type=float, default=300,
                            help="while event time lags the wall clock (a backlog), let the "
                                 "completeness watermark advance up to this far per step")
        parser.add_argument("--watermark_idle_ticks", type=int, default=0,
                            help="stop ticking after this many ticks without events (0: "
                                 "never; bounded test inputs need it to end)")
        parser.add_argument("--session_early_s", type=float, default=0,
                            help="also emit open sessions every this many seconds (0: only "
                                 "when they close)")


def streaming_chain_config(opts: PipelineOptions) -> ChainConfig:
    own = opts.view_as(StreamingOptions)
    cfg = chain_config(opts)
    on_flink = "flink" in str(opts.view_as(StandardOptions).runner or "").lower()
    return replace(cfg, sessions=replace(
        cfg.sessions, gate_tick_s=own.watermark_tick_s, gate_max_step_s=own.watermark_max_step_s,
        late_firing="count" if on_flink else "always",
        gate_max_idle_ticks=own.watermark_idle_ticks or None, early_s=own.session_early_s))


def build(p: beam.Pipeline, source: beam.PTransform, sinks: dict[str, beam.PTransform],
          opts: PipelineOptions) -> None:
    """source yields raw envelope bytes (or Kafka records, or lists of them); sinks by
    table: ``events`` (takes LISTS of rows), ``invalid``, ``counts``, ``identities``,
    ``sessions``, ``completeness`` (and optionally ``dlq`` and ``offsets``)."""
    out = p | "Source" >> source | "ProcessEvents" >> ProcessRawEvents(
        streaming_chain_config(opts), streaming=True)
    stored = [out["events"] | "WriteEvents" >> sinks["events"],
              out["identities"] | "WriteIdentities" >> sinks["identities"],
              out["sessions"] | "WriteSessions" >> sinks["sessions"]]
    # rows the store rejects are dead-lettered like every other bad row
    bad = ((out["bad"], *(pc for s in stored for pc in failed_rows(s)))
           | "AllBadRows" >> beam.Flatten())
    invalid = bad | "WriteInvalid" >> sinks["invalid"]
    if "offsets" in sinks:
        # every record ends stored in events or events_invalid, or dropped as a copy
        ((stored_positions(stored[0]), stored_positions(invalid),
          out["duplicates"] | "DuplicatePositions" >> beam.FlatMap(_positions))
         | "DonePositions" >> beam.Flatten() | "CommitOffsets" >> sinks["offsets"])
    if "dlq" in sinks:
        bad | "WriteDeadLetters" >> sinks["dlq"]
    out["completeness"] | "WriteCompleteness" >> sinks["completeness"]
    (out["events"] | "LiveCounts" >> CountPerWindow(opts.view_as(StreamingOptions).count_window_s)
     | "WriteCounts" >> sinks["counts"])


def stored_positions(result: Any) -> beam.PCollection:
    """A sink's reports of stored positions (its main output)."""
    return result.inserted if isinstance(result, beam.pvalue.DoOutputsTuple) else result


def _positions(row: dict[str, Any]) -> list[tuple[tuple[str, int], list[int]]]:
    return reports([source_of(row)])


def read_config(opts: PipelineOptions) -> KafkaReadConfig:
    """The stream's reader: offsets are committed after the store (transforms/offsets.py);
    each poll is one element, a list of records."""
    return replace(kafka_read_config(opts, "radixinsight-streaming"), emit_lists=True)


def kafka_source(opts: PipelineOptions) -> beam.PTransform:
    """KafkaRecords of the raw topic (ParseEnvelopes keeps their positions)."""
    return ReadFromKafka(read_config(opts))


def store_sinks(store: str | None) -> dict[str, beam.PTransform]:
    from transforms.invalid_rows import INVALID_COLUMNS, invalid_row

    return {
        "events": WriteToClickHouse(store, "events", EVENT_COLUMNS, batches=True),
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
    from transforms.offsets import CommitStoredOffsets

    argv = runner_args(list(sys.argv[1:] if argv is None else argv), streaming=True)
    if "--runner=FlinkRunner" in argv and not any(a.startswith("--state_backend") for a in argv):
        from radixinsight.toolchain.flink import file_checkpoint_args

        argv += file_checkpoint_args()
    opts = PipelineOptions(argv)
    kafka = opts.view_as(KafkaSourceOptions)
    sinks = store_sinks(opts.view_as(ChainOptions).store)
    sinks["dlq"] = WriteToKafka(kafka.kafka_bootstrap, dlq_topic(kafka.topic_prefix), dlq_record)
    sinks["offsets"] = CommitStoredOffsets(read_config(opts))
    with beam.Pipeline(options=opts) as p:
        build(p, kafka_source(opts), sinks, opts)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    run()
