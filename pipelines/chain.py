"""The transforms every job runs, in one place: raw bytes to rows for every table.

parse -> validate -> dedup -> enrich -> identity -> (events, live counts, sessions).
The streaming job and the backfill compose this same transform; only their sources
and sinks differ (and the backfill, being batch, needs no lateness gate).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import ChainOptions
from transforms.dedup import DEFAULT_WINDOW_S, DROPPED, DedupEvents
from transforms.enrichments import EnrichConfig, EnrichEvents
from transforms.event_time import TOO_LATE, WATERMARKS
from transforms.identity import LINKS, ResolveIdentity
from transforms.parse import ParseEnvelopes
from transforms.results import BAD
from transforms.sessions import SessionConfig, Sessionize
from transforms.validate import ValidateConfig, ValidateEvents


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
        cfg = self._cfg
        parsed = raw | "ParseEnvelopes" >> ParseEnvelopes(cfg.bare_received_at)
        valid = parsed.envelopes | "ValidateEvents" >> ValidateEvents(cfg.validate)
        unique = valid.rows | "DedupEvents" >> DedupEvents(cfg.dedup_window_s,
                                                           streaming=self._streaming)
        enriched = unique.rows | "EnrichEvents" >> EnrichEvents(cfg.enrich)
        resolved = enriched.rows | "ResolveIdentity" >> ResolveIdentity(
            streaming=self._streaming)
        sessions = resolved.rows | "Sessionize" >> Sessionize(cfg.sessions,
                                                              streaming=self._streaming)
        out = {
            "events": resolved.rows,
            "bad": (parsed[BAD], valid[BAD], enriched[BAD]) | "AllBadRows" >> beam.Flatten(),
            "identities": resolved[LINKS],
            "sessions": sessions["sessions"],
            "duplicates": unique[DROPPED],
        }
        if self._streaming:
            out["too_late"] = sessions[TOO_LATE]
            out["completeness"] = sessions[WATERMARKS]
        return out
