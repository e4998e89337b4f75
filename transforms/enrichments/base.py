"""What every enrichment module provides (see STYLE.md "Enrichments").

A module exports:

- ``NAME``: a stable name (used in bad rows, metrics and config keys);
- ``Config``: a frozen dataclass subclassing :class:`EnrichmentConfig`, validated in
  ``__post_init__`` (raise ``ValueError`` with a clear message);
- ``open(cfg) -> ctx``: builds the expensive per-worker state (a GeoIP reader, a UA
  parser with its cache); called once per worker in ``DoFn.setup``;
- ``enrich(row, ctx) -> dict``: a pure function returning only the NEW or CHANGED
  columns for ``row`` (a flat event row, ARCHITECTURE.md column names); it never
  mutates ``row``. Unknown values are ``""`` (never "None"/"Other"), flags 0/1.
  It raises :class:`EnrichmentError` for a failure that must dead-letter the event;
  the chain accumulates those messages across enrichments.

The run order is the one list in ``transforms/enrichments/__init__.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnrichmentConfig:
    enabled: bool = True


class EnrichmentError(ValueError):
    """The event cannot be enriched and must become a bad row."""
