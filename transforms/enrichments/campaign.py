"""Campaign attribution: ``utm_*`` columns from the landing page's query string.

Rules (chosen to match Google Analytics' and Snowplow's defaults, so numbers reconcile):

- Only the query string counts, not the ``#fragment``: fragments never reach a server and
  GA4 ignores them too, so counting them here would make our numbers differ from every
  other tool's. Hash-routed apps should put the tags before the ``#``.
- Keys are case-insensitive (``UTM_Source`` works: hand-typed links get this wrong); values
  are URL-decoded (``+`` and ``%xx``, invalid UTF-8 becomes U+FFFD), stripped, and the first
  non-empty occurrence of a key wins (what GA does with duplicated tags).
- Values are capped at ``MAX_VALUE_CHARS`` (500): real campaign names are far shorter, while
  bots and broken link builders send kilobytes that would bloat ClickHouse dictionaries
  and group-bys. Snowplow's atomic ``mkt_*`` columns are capped in the same range.
- Only the first ``MAX_QUERY_CHARS`` of the query are scanned, bounding CPU per event.
- Paid click ids (``gclid`` ...) mark a paid visit that carries no tags: when ``utm_medium``
  is absent it becomes ``Config.paid_medium`` and ``utm_source`` the click id's network
  (a ``utm_source`` already present is kept). ``Config.click_ids`` order decides ties.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from transforms.enrichments.base import EnrichmentConfig

NAME = "campaign"

COLUMNS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
MAX_VALUE_CHARS = 500
MAX_QUERY_CHARS = 32 * 1024

# Click-id parameter -> ad network, for ads that auto-tag instead of carrying utm_* tags.
# gbraid/wbraid are Google's iOS-privacy variants of gclid.
DEFAULT_CLICK_IDS: tuple[tuple[str, str], ...] = (
    ("gclid", "google"),
    ("gbraid", "google"),
    ("wbraid", "google"),
    ("msclkid", "bing"),
    ("fbclid", "facebook"),
    ("ttclid", "tiktok"),
    ("li_fat_id", "linkedin"),
)

_EMPTY: dict[str, str] = dict.fromkeys(COLUMNS, "")


@dataclass(frozen=True)
class Config(EnrichmentConfig):
    click_ids: tuple[tuple[str, str], ...] = DEFAULT_CLICK_IDS
    paid_medium: str = "paid"

    def __post_init__(self) -> None:
        if not isinstance(self.click_ids, tuple) or not all(
            isinstance(p, tuple) and len(p) == 2 and all(isinstance(s, str) and s for s in p)
            for p in self.click_ids
        ):
            raise ValueError("campaign.click_ids must be a tuple of (param, source) str pairs")
        if not isinstance(self.paid_medium, str) or not self.paid_medium.strip():
            raise ValueError("campaign.paid_medium must be a non-empty string")


@dataclass(frozen=True)
class Context:
    enabled: bool
    paid_medium: str
    click_ids: dict[str, str]  # lower-cased param -> source, in Config order
    wanted: frozenset[str]  # lower-cased keys worth decoding
    tagged: re.Pattern[str]  # finds "utm" or a click id in a lower-cased query


def open(cfg: Config) -> Context:
    """Precompute the lower-cased key sets so the hot path only does dict lookups."""
    click_ids: dict[str, str] = {}
    for param, source in cfg.click_ids:
        click_ids.setdefault(param.lower(), source)
    tagged = re.compile("|".join(re.escape(k) for k in ("utm", *click_ids)))
    return Context(cfg.enabled, cfg.paid_medium.strip(), click_ids,
                   frozenset(COLUMNS) | frozenset(click_ids), tagged)


def _query(url: str) -> str:
    """The query string of ``url`` (without fragment), truncated to MAX_QUERY_CHARS."""
    h = url.find("#")
    if h >= 0:
        url = url[:h]
    q = url.find("?")
    return "" if q < 0 else url[q + 1:q + 1 + MAX_QUERY_CHARS]


def _clean(value: str) -> str:
    return unquote_plus(value, errors="replace").strip()[:MAX_VALUE_CHARS]


def parse_params(query: str, wanted: frozenset[str]) -> dict[str, str]:
    """First non-empty decoded value of each ``wanted`` key (lower-cased) in ``query``."""
    found: dict[str, str] = {}
    for part in query.split("&"):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if key not in wanted:
            if "%" not in key and "+" not in key:
                continue
            key = unquote_plus(key, errors="replace").strip().lower()
            if key not in wanted:
                continue
        if key in found or not sep:
            continue
        cleaned = _clean(value)
        if cleaned:
            found[key] = cleaned
    return found


def enrich(row: dict[str, Any], ctx: Context) -> dict[str, str]:
    """The five ``utm_*`` columns for ``row["page_url"]``; never raises on any string."""
    if not ctx.enabled:
        return {}
    url = row.get("page_url")
    if not isinstance(url, str) or "?" not in url:
        return dict(_EMPTY)
    query = _query(url)
    if ctx.tagged.search(query.lower()) is None:  # one scan instead of one per id
        return dict(_EMPTY)
    found = parse_params(query, ctx.wanted)
    out = {col: found.get(col, "") for col in COLUMNS}
    if not out["utm_medium"]:
        for param, source in ctx.click_ids.items():
            if param in found:
                out["utm_medium"] = ctx.paid_medium
                out["utm_source"] = out["utm_source"] or source
                break
    return out
