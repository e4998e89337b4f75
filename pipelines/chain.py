"""The transforms every job runs, in one place: raw bytes to rows for every table.

parse -> validate -> enrich -> dedup and identity (per browser) -> (events, sessions).
The streaming job and the backfill compose this same transform; only their sources
and sinks differ (and the backfill, being batch, needs no lateness gate).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import GlobalWindows

from pipelines.options import ChainOptions
from transforms.browser_state import DedupAndResolve
from transforms.chain import ProcessEventsPerBrowser, process_raw
from transforms.clickhouse_sink import RowBatch
from transforms.dedup import DEFAULT_WINDOW_S, DROPPED, first_copies
from transforms.enrichments import EnrichConfig, Opened, open_chain
from transforms.event_time import TOO_LATE, WATERMARKS
from transforms.identity import LINKS, resolve_in_order
from transforms.parse import ParseError, decode_envelope
from transforms.results import BAD
from transforms.sessions import SessionConfig, Sessionize, session_key, split_sessions
from transforms.validate import ValidateConfig, user_ids


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
    """raw bytes (or Kafka records, or lists of them) -> {"events", "bad", "identities",
    "sessions", "duplicates"} (+ "too_late" and "completeness" when ``streaming``): the
    rows of each table. "events" carries LISTS of rows (one per browser and bundle in
    the stream); batch (``streaming=False``): every output but "bad" does."""

    def __init__(self, cfg: ChainConfig, *, streaming: bool) -> None:
        super().__init__()
        self._cfg, self._streaming = cfg, streaming

    def expand(self, raw):
        if not self._streaming:
            return raw | "Batch" >> _ProcessBatch(self._cfg)
        cfg = self._cfg
        # parse, validate and enrich fused in one step, as in the batch form; rows come
        # out gathered per browser, so Beam pays its per-element cost per browser and poll
        processed = raw | "ParseValidateEnrich" >> ProcessEventsPerBrowser(
            cfg.validate, cfg.enrich, cfg.bare_received_at)
        # one keyed step per browser for both: each state read is a runner round trip
        resolved = processed.rows | "DedupAndResolve" >> DedupAndResolve(cfg.dedup_window_s,
                                                                          gathered=True)
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

# Batch: browsers are spread over this many shards, the unit of the one shuffle (and of
# parallelism). Fixed, so every worker and every rerun puts a browser in the same shard.
SHARDS = 64
# Raw records per (shard, records) element out of the first stage.
SHARD_BATCH = 512
# Raw records sharded so far in this process (the backfill's progress line).
RAW_SEEN = [0]
# Rows per element of the batch outputs (lists of rows): one sink insert's worth.
OUTPUT_BATCH = 10_000


@dataclass(frozen=True)
class BrowserTables:
    """One browser's share of each table, from all its enriched rows."""

    events: list[dict[str, Any]]
    identities: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    duplicates: list[dict[str, Any]]


def per_browser(project_id: str, key: str, rows: list[dict[str, Any]], gap_s: float,
                version: int) -> BrowserTables:
    """Batch: one browser's enriched rows, all known -> its unique rows (resolved in
    event-time order), identity links, sessions and dropped copies."""
    unique, dropped = first_copies(rows)
    resolved, links = resolve_in_order(unique)
    return BrowserTables(resolved, links,
                         split_sessions(project_id, key, resolved, gap_s, version), dropped)


def browser_of(raw: bytes, bare_received_at: str | None) -> str:
    """The browser (``session_key``) a raw record's row will have, as one string; ""
    for a record that will not parse (it becomes a bad row wherever it goes)."""
    try:
        event = decode_envelope(raw, bare_received_at)["event"]
    except ParseError:
        return ""
    user_id, anonymous_id = user_ids(event)
    project = event.get("project_id")
    return f"{project if isinstance(project, str) else ''}\x00{anonymous_id or user_id}"


def shard_of(browser: str, shards: int = SHARDS) -> int:
    """A stable shard (not ``hash()``, which differs between worker processes)."""
    return zlib.crc32(browser.encode("utf-8", "surrogatepass")) % shards


class _ShardFn(beam.DoFn):
    """raw bytes -> (shard, [(browser, raw), ...]): records buffered per shard within a
    bundle, so the shuffle moves a few thousand lists of bytes, not a row per event."""

    def __init__(self, bare_received_at: str | None) -> None:
        self._bare = bare_received_at
        self._buffers: dict[int, list[tuple[str, bytes]]] = {}
        self._read = beam.metrics.Metrics.counter("backfill", "events_read")

    def start_bundle(self) -> None:
        self._buffers = {}

    def process(self, raw: bytes):
        browser = browser_of(raw, self._bare)
        shard = shard_of(browser)
        buffer = self._buffers.setdefault(shard, [])
        buffer.append((browser, raw))
        if len(buffer) >= SHARD_BATCH:
            del self._buffers[shard]
            self._read.inc(len(buffer))
            RAW_SEEN[0] += len(buffer)
            yield shard, buffer

    def finish_bundle(self):
        for shard, buffer in self._buffers.items():
            self._read.inc(len(buffer))
            RAW_SEEN[0] += len(buffer)
            yield GlobalWindows.windowed_value((shard, buffer))
        self._buffers = {}


class _PerShardFn(beam.DoFn):
    """(shard, batches of (browser, raw)) -> bad rows one by one, and lists of at most
    OUTPUT_BATCH rows for events, identities, sessions and duplicates. Browser by
    browser: parse, validate and enrich its records, then ``per_browser``."""

    def __init__(self, cfg: ChainConfig) -> None:
        self._cfg = cfg
        self._chain: Opened = ()
        self._rows = beam.metrics.Metrics.counter("radixinsight", "rows")
        self._bad = beam.metrics.Metrics.counter("radixinsight", "bad_rows")

    def setup(self) -> None:
        self._chain = open_chain(self._cfg.enrich)

    def process(self, kv: tuple[int, Iterable[list[tuple[str, bytes]]]]):
        cfg, chain = self._cfg, self._chain
        by_browser: dict[str, list[bytes]] = defaultdict(list)
        for batch in kv[1]:
            for browser, raw in batch:
                by_browser[browser].append(raw)
        out: dict[str, list[dict[str, Any]]] = {tag: [] for tag in BATCH_TAGS}
        version = time.time_ns() // 1000
        for raws in by_browser.values():
            rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
            for raw in raws:
                ok, row = process_raw(raw, cfg.validate, chain, cfg.bare_received_at)
                if ok:
                    rows[session_key(row)].append(row)
                else:
                    self._bad.inc()
                    yield beam.pvalue.TaggedOutput(BAD, row)
            for (project_id, key), browser_rows in rows.items():
                self._rows.inc(len(browser_rows))
                tables = per_browser(project_id, key, browser_rows, cfg.sessions.gap_s,
                                     version)
                _DUPLICATES.inc(len(tables.duplicates))
                for tag in BATCH_TAGS:
                    buffer = out[tag]
                    buffer += getattr(tables, tag)
                    if len(buffer) >= OUTPUT_BATCH:
                        out[tag] = []
                        yield _tagged(tag, buffer)
        for tag, buffer in out.items():
            if buffer:
                yield _tagged(tag, buffer)


BATCH_TAGS = ("events", "identities", "sessions", "duplicates")


def _tagged(tag: str, rows: list[dict[str, Any]]) -> Any:
    return rows if tag == "events" else beam.pvalue.TaggedOutput(tag, rows)


class _ProcessBatch(beam.PTransform):
    """The batch composition of the same functions, with ONE shuffle: raw records are
    keyed by browser (copies of an event share it) and moved as bytes, in lists per
    shard; after it, each browser's records are parsed, validated, enriched,
    deduplicated, resolved and sessionized together. The streaming form needs state,
    timers and session windows instead; on the batch runner a shuffle of
    enriched rows, one element per row, cost more than the work itself.
    Outputs: ``bad`` carries bad rows; ``events``, ``identities``, ``sessions`` and
    ``duplicates`` carry LISTS of rows (for sinks that take batches)."""

    def __init__(self, cfg: ChainConfig) -> None:
        super().__init__()
        self._cfg = cfg

    def expand(self, raw):
        out = (raw
               | "ShardByBrowser" >> beam.ParDo(_ShardFn(self._cfg.bare_received_at))
               | "GroupByShard" >> beam.GroupByKey()
               | "PerShard" >> beam.ParDo(_PerShardFn(self._cfg)).with_output_types(
                   RowBatch, **dict.fromkeys(BATCH_TAGS[1:], RowBatch)).with_outputs(
                   BAD, *BATCH_TAGS[1:], main="events"))
        return {"events": out.events, "bad": out[BAD], "identities": out.identities,
                "sessions": out.sessions, "duplicates": out.duplicates}
