"""The enrichment chain: one explicit order, per-worker state, failures accumulated.

Order matters once: ``local_time`` reads the timezone ``geo`` found.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import apache_beam as beam

from transforms.enrichments.base import EnrichmentConfig, EnrichmentError
from transforms.results import BAD, bad_row, source_of, with_source, without_source

STAGE = "enrich"
# Keys enrichments pass to later ones that are not ``events`` columns.
INTERNAL_KEYS = ("geo_timezone",)


def modules() -> tuple[ModuleType, ...]:
    """The run order. Imported lazily: each module pulls in its own libraries."""
    from transforms.enrichments import campaign, geo, local_time, referrer, user_agent

    return (geo, user_agent, campaign, referrer, local_time)


@dataclass(frozen=True)
class EnrichConfig:
    """Per-enrichment configs by module NAME; a missing one uses that module's defaults."""

    configs: Mapping[str, EnrichmentConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = {m.NAME for m in modules()}
        unknown = set(self.configs) - names
        if unknown:
            raise ValueError(f"unknown enrichments {sorted(unknown)}; known: {sorted(names)}")

    def config_for(self, module: ModuleType) -> EnrichmentConfig:
        return self.configs.get(module.NAME) or module.Config()


Opened = tuple[tuple[ModuleType, Any], ...]


def open_chain(cfg: EnrichConfig) -> Opened:
    """Build each enabled enrichment's per-worker state (readers, parsers, caches)."""
    chain = []
    for module in modules():
        mod_cfg = cfg.config_for(module)
        if mod_cfg.enabled:
            chain.append((module, module.open(mod_cfg)))
    return tuple(chain)


def enrich_row(row: Mapping[str, Any], chain: Opened) -> dict[str, Any]:
    """All enrichments applied to a copy of ``row``; EnrichmentError lists every failure."""
    out = dict(row)
    failures: list[str] = []
    for module, ctx in chain:
        try:
            out.update(module.enrich(out, ctx))
        except EnrichmentError as exc:
            failures.append(f"{module.NAME}: {exc}")
    if failures:
        raise EnrichmentError("; ".join(failures))
    for key in INTERNAL_KEYS:
        out.pop(key, None)
    return out


def enrich_bad_row(exc: EnrichmentError, row: Mapping[str, Any]) -> dict[str, Any]:
    row = without_source(row)
    return bad_row(STAGE, "enrichment_failed", str(exc).split("; "), _row_json(row), row,
                   row.get("received_at"))


class _EnrichFn(beam.DoFn):
    def __init__(self, cfg: EnrichConfig) -> None:
        self._cfg = cfg
        self._chain: Opened = ()

    def setup(self) -> None:
        self._chain = open_chain(self._cfg)

    def process(self, row: dict[str, Any]):
        try:
            yield enrich_row(row, self._chain)
        except EnrichmentError as exc:
            yield beam.pvalue.TaggedOutput(BAD, with_source(enrich_bad_row(exc, row),
                                                            source_of(row)))


def _row_json(row: Mapping[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(row, default=str)


class EnrichEvents(beam.PTransform):
    """rows -> enriched rows (main output ``rows``) and bad rows (``BAD``)."""

    def __init__(self, cfg: EnrichConfig | None = None) -> None:
        super().__init__()
        self._cfg = cfg or EnrichConfig()

    def expand(self, rows):
        return rows | "Enrich" >> beam.ParDo(_EnrichFn(self._cfg)).with_outputs(BAD, main="rows")
