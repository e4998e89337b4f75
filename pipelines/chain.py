"""The transforms every job runs, in one place: raw bytes to rows for every table.

parse -> validate -> enrich -> dedup and identity (per browser) -> (events, sessions).
The streaming job and the backfill compose this same transform; only their sources
and sinks differ (and the backfill, being batch, needs no lateness gate).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import ChainOptions
from transforms.browser_state import DedupAndResolve
from transforms.chain import ProcessEvents
from transforms.dedup import DEFAULT_WINDOW_S, DROPPED, first_copies
from transforms.enrichments import EnrichConfig
from transforms.event_time import TOO_LATE, WATERMARKS
from transforms.identity import LINKS, resolve_in_order
from transforms.results import BAD
from transforms.sessions import SessionConfig, Sessionize, session_key, split_sessions
from transforms.validate import ValidateConfig


@dataclass(frozen=True)
class ChainConfig:
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    sessions: SessionConfig = field(default_factory=SessionConfig)
    dedup_window_s: float = DEFAULT_WINDOW_S
    # Files of bare events (not envelopes) are stamped as received at this time.
    bare_received_at: str | None = None


def validate_config(opts: ChainOptions) -> ValidateConfig:
    """Project rules from the registry file, read once when the job is built."""
    from collector.projects import Registry

    if not opts.projects:
        logging.warning("no --projects registry: events of every project are accepted")
        return ValidateConfig()
    path = Path(opts.projects)
    if not path.exists():
        raise FileNotFoundError(f"project registry {path} does not exist")
    return ValidateConfig(projects=Registry.load(path).projects)


def enrich_config(opts: ChainOptions) -> EnrichConfig:
    from transforms.enrichments import geo

    return EnrichConfig({"geo": geo.Config(db_path=opts.geoip_db, anonymize_ip=opts.anonymize_ip)})


def chain_config(opts: PipelineOptions, bare_received_at: str | None = None) -> ChainConfig:
    """The chain's settings from the ChainOptions flags."""
    own = opts.view_as(ChainOptions)
    return ChainConfig(
        validate=validate_config(own), enrich=enrich_config(own),
        dedup_window_s=own.dedup_window_s, bare_received_at=bare_received_at,
        sessions=SessionConfig(gap_s=own.session_gap_s,
                               allowed_lateness_s=own.session_lateness_s))


class ProcessRawEvents(beam.PTransform):
    """raw bytes -> {"events", "bad", "identities", "sessions"} (+ "too_late" and
    "completeness" when ``streaming``): the rows of each table."""

    def __init__(self, cfg: ChainConfig, *, streaming: bool) -> None:
        super().__init__()
        self._cfg, self._streaming = cfg, streaming

    def expand(self, raw):
        if not self._streaming:
            return raw | "Batch" >> _ProcessBatch(self._cfg)
        cfg = self._cfg
        # parse, validate and enrich fused in one step, as in the batch form
        processed = raw | "ParseValidateEnrich" >> ProcessEvents(cfg.validate, cfg.enrich,
                                                                 cfg.bare_received_at)
        # one keyed step per browser for both: each state read is a runner round trip
        resolved = processed.rows | "DedupAndResolve" >> DedupAndResolve(cfg.dedup_window_s)
        sessions = resolved.rows | "Sessionize" >> Sessionize(cfg.sessions, streaming=True)
        return {
            "events": resolved.rows,
            "bad": processed[BAD],
            "identities": resolved[LINKS],
            "sessions": sessions["sessions"],
            "duplicates": resolved[DROPPED],
            "too_late": sessions[TOO_LATE],
            "completeness": sessions[WATERMARKS],
        }


_DUPLICATES = beam.metrics.Metrics.counter("dedup", "duplicates_dropped")


def per_browser(kv: tuple[tuple[str, str], list[dict[str, Any]]], gap_s: float):
    """Batch: one browser's enriched rows, all known -> its unique rows (resolved in
    event-time order), identity links, sessions and dropped copies (tagged)."""
    (project_id, key), rows = kv
    unique, dropped = first_copies(list(rows))
    resolved, links = resolve_in_order(unique)
    yield from resolved
    for link in links:
        yield beam.pvalue.TaggedOutput("identities", link)
    for session in split_sessions(project_id, key, resolved, gap_s, time.time_ns() // 1000):
        yield beam.pvalue.TaggedOutput("sessions", session)
    for copy in dropped:
        _DUPLICATES.inc()
        yield beam.pvalue.TaggedOutput("duplicates", copy)


def _by_browser(row: dict[str, Any]) -> tuple[tuple[str, str], dict[str, Any]]:
    return session_key(row), row


class _ProcessBatch(beam.PTransform):
    """The batch composition of the same functions: parse, validate and enrich fused in
    one step, then ONE shuffle by browser for dedup, identity and sessions (copies of an
    event share its browser). The streaming form needs state, timers and session
    windows instead; on the batch runner those cost 5x more than the work itself."""

    def __init__(self, cfg: ChainConfig) -> None:
        super().__init__()
        self._cfg = cfg

    def expand(self, raw):
        cfg = self._cfg
        processed = raw | "ParseValidateEnrich" >> ProcessEvents(cfg.validate, cfg.enrich,
                                                                 cfg.bare_received_at)
        grouped = (processed.rows
                   | "KeyByBrowser" >> beam.Map(_by_browser)
                   | "GroupByBrowser" >> beam.GroupByKey()
                   | "PerBrowser" >> beam.FlatMap(per_browser, cfg.sessions.gap_s).with_outputs(
                       "identities", "sessions", "duplicates", main="events"))
        return {"events": grouped.events, "bad": processed[BAD],
                "identities": grouped.identities, "sessions": grouped.sessions,
                "duplicates": grouped.duplicates}
