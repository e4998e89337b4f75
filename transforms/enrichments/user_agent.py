"""User-agent enrichment: browser, OS, device class and bot flag from ``user_agent``.

Parsing uses ``ua-parser`` 1.x with the ``ua-parser-rs`` resolver over the
``ua-parser-builtins`` rules: the same uap-core regexes as the pure-Python resolver
(a test checks they agree) at ~30x its speed. On top of that one ``functools.lru_cache``
keyed on the (capped) UA string holds the *final* columns, so a repeated UA costs one
dict lookup plus a copy, and the bot regex and device rules run once per distinct UA.

Why ``user-agents`` is not used at runtime: its ``UserAgent(ua_string)`` constructor
always re-parses with ``ua_parser.user_agent_parser.Parse``, the legacy pure-Python
regex path (~1.5k parses/s, with a 200-entry cache that it clears when full). There is
no public way to hand it a pre-parsed result; the only way is ``__new__`` plus setting its
private attributes, which ties us to the internals of a package unmaintained since 2020.
Its device classification is ~40 lines of rules over the uap families, so
:func:`_device_type` ports them (mobile/tablet/pc, same order and lists) with fixes noted
there. ``user-agents`` stays a dev dependency, as the baseline in ``bench/enrich_ua.py``.

Empty/missing UA: every column ``""`` (``device_type`` too: nothing is known), ``is_bot`` 0.
A non-empty UA that is none of desktop/mobile/tablet/bot gets ``device_type`` "other".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ua_parser import Domain, load_lazy_builtins
from ua_parser.core import Resolver
from ua_parser.regex import Resolver as RsResolver

from transforms.enrichments.base import EnrichmentConfig, EnrichmentError

NAME = "user_agent"

COLUMNS = (
    "browser", "browser_version", "os", "os_version", "device_type",
    "device_manufacturer", "device_model", "is_bot",
)

# Real user agents are < 512 characters (the uap-core corpus tops out at 492). Anything
# longer is abuse or garbage: capping bounds the regex work per string (uap has
# patterns with unbounded ``.*`` scans) and the memory a cache key can pin. 1 KB keeps
# every genuine UA intact.
MAX_UA_CHARS = 1024

# Non-browser HTTP clients and headless/automation browsers that uap does not label
# "Spider". Matched once per distinct UA (the result is cached). Deliberately absent:
# okhttp, Dalvik, CFNetwork and similar app-runtime UAs: a mobile app using our SDK
# may send them, so they are real users, not bots.
_BOT_TOKENS = (
    "python-requests", "python-urllib", "python-httpx", "aiohttp", "httpx/",
    "wget/", "curl/", "go-http-client", "libwww-perl", "lwp::simple",
    "apache-httpclient", "jakarta commons-httpclient", "node-fetch", "axios/", "undici",
    "got (https://github.com/sindresorhus/got)", "scrapy", "phantomjs", "headless",
    "puppeteer", "playwright", "selenium", "webdriver", "slimerjs", "guzzlehttp",
    "postmanruntime", "insomnia/", "httpie/", "restsharp", "reqwest/", "masscan", "zgrab",
    "nmap", "nikto", "sqlmap",
)
# A UA that is just a client name ("curl", "Java/1.8", "python/3.11 aiohttp").
_BOT_START_RE = re.compile(r"(?:curl|wget|java|go-http-client|python|ruby|perl|php)\b")
_JAVA_RE = re.compile(r"(?:^|\s)java/\d")  # not J2ME phones' "HuaweiJava/1.0"
# Generic crawler words as whole words only: "CUBOT P30" is a phone.
_BOT_WORDS = ("bot", "crawler", "spider", "scraper")
_BOT_WORD_RE = re.compile(r"(?<![a-z])(?:bot|crawler|spider|scraper)(?![a-z])")


def _is_bot_client(ua: str) -> bool:
    """Plain substring tests first (C speed); regexes only where a boundary matters."""
    low = ua.lower()
    return (any(t in low for t in _BOT_TOKENS)
            or _BOT_START_RE.match(low) is not None
            or ("java/" in low and _JAVA_RE.search(low) is not None)
            or (any(w in low for w in _BOT_WORDS) and _BOT_WORD_RE.search(low) is not None))


_TV_RE = re.compile(r"HbbTV|SmartTV|SMART-TV|\bTV\b|GoogleTV|AppleTV|CrKey|Roku|BRAVIA"
                    r"|NetCast|Tizen.*TV|Web0S|webOS.*TV|PlayStation|Xbox|Nintendo",
                    re.IGNORECASE)
# Unknown / placeholder values from uap that must become "" (ARCHITECTURE.md).
_UNKNOWN = frozenset({"", "Other", "None"})
# uap "brands" that are classes, not manufacturers; their "models" are classes too.
_CLASS_BRANDS = frozenset({"Spider", "Generic"})
# "K" is Chrome's frozen model placeholder in reduced Android UAs ("Android 10; K").
_PLACEHOLDER_MODELS = frozenset({"K"})

# Ported from user-agents 2.2 (parsers.py), same lists plus the current uap names.
_MOBILE_DEVICE_FAMILIES = frozenset({
    "iPhone", "iPod", "Generic Smartphone", "Generic Feature Phone",
    "PlayStation Vita", "iOS-Device",
})
_PC_OS_FAMILIES = frozenset({"Windows 95", "Windows 98", "Solaris"})
_MOBILE_OS_FAMILIES = frozenset({
    "Windows Phone", "Windows Phone OS", "Symbian OS", "Symbian^3", "Bada",
    "Windows CE", "Windows Mobile", "Maemo", "KaiOS",
})
_MOBILE_BROWSER_FAMILIES = frozenset({
    "IE Mobile", "Opera Mobile", "Opera Mini", "Chrome Mobile",
    "Chrome Mobile WebView", "Chrome Mobile iOS",
})
_TABLET_DEVICE_FAMILIES = frozenset({
    "iPad", "BlackBerry Playbook", "Blackberry Playbook", "Kindle", "Kindle Fire",
    "Kindle Fire HD", "Galaxy Tab", "Xoom", "Dell Streak", "Generic Tablet",
})


@dataclass(frozen=True)
class Config(EnrichmentConfig):
    """``cache_size``: distinct UA strings whose columns are kept per worker."""

    cache_size: int = 10_000

    def __post_init__(self) -> None:
        if isinstance(self.cache_size, bool) or not isinstance(self.cache_size, int):
            raise ValueError(f"user_agent.cache_size must be an int, got {self.cache_size!r}")
        if not 0 <= self.cache_size <= 10_000_000:
            raise ValueError(
                f"user_agent.cache_size must be in [0, 10000000], got {self.cache_size}")


@dataclass(frozen=True)
class Context:
    """Per-worker state: the Rust-backed resolver and the cached UA -> columns lookup."""

    resolver: Resolver
    lookup: Callable[[str], tuple[str | int, ...]]  # functools.lru_cache wrapper


_EMPTY: tuple[str | int, ...] = ("", "", "", "", "", "", "", 0)


def open(cfg: Config) -> Context:
    """Build the resolver (~0.15 s: compiles the uap regexes) and its cache."""
    resolver = RsResolver(load_lazy_builtins())
    lookup = functools.lru_cache(maxsize=cfg.cache_size)(
        functools.partial(parse_columns, resolver))
    return Context(resolver=resolver, lookup=lookup)


def enrich(row: dict[str, Any], ctx: Context) -> dict[str, str | int]:
    """Columns for ``row["user_agent"]``; never raises on a ``str`` (or missing) UA."""
    ua = row.get("user_agent")
    if ua is None:
        return dict(zip(COLUMNS, _EMPTY, strict=True))
    if not isinstance(ua, str):
        raise EnrichmentError(f"user_agent must be a string, got {type(ua).__name__}")
    return dict(zip(COLUMNS, ctx.lookup(_clean(ua)), strict=True))


def _clean(ua: str) -> str:
    """Cap the length and make the string encodable as UTF-8 (the Rust side needs it).

    Lone surrogates (from ``surrogateescape``-decoded bytes) become "?"; control
    characters are left alone: regexes do not care and they are legitimate str data.
    """
    ua = ua[:MAX_UA_CHARS].strip()
    if not ua.isascii():
        ua = ua.encode("utf-8", "replace").decode("utf-8")
    return ua


def parse_columns(resolver: Resolver, ua: str) -> tuple[str | int, ...]:
    """Column values (in ``COLUMNS`` order) for one cleaned UA; the cached unit of work."""
    if not ua:
        return _EMPTY
    r = resolver(ua, Domain.ALL)
    browser = _known(r.user_agent.family) if r.user_agent else ""
    browser_version = _version(r.user_agent) if browser and r.user_agent else ""
    os = _known(r.os.family) if r.os else ""
    os_version = _version(r.os) if os and r.os else ""
    dev_family = _known(r.device.family) if r.device else ""
    brand = _known(r.device.brand or "") if r.device else ""
    model = _known(r.device.model or "") if r.device else ""
    if brand in _CLASS_BRANDS:
        brand = model = ""
    elif brand.startswith("Generic_"):  # Generic_Android(_Tablet): real model, no maker
        brand = ""
        model = "" if model in _PLACEHOLDER_MODELS else model
    is_bot = dev_family == "Spider" or _is_bot_client(ua)
    device_type = ("bot" if is_bot
                   else _device_type(ua, browser, os, os_version, dev_family, brand))
    return (browser, browser_version, os, os_version, device_type, brand, model, int(is_bot))


def _known(value: str) -> str:
    return "" if value in _UNKNOWN else value


def _version(part: Any) -> str:
    """``major.minor.patch`` with empty parts dropped (patch_minor is not a column)."""
    return ".".join(v for v in (part.major, part.minor, part.patch) if v)


def _device_type(
    ua: str, browser: str, os: str, os_version: str, device: str, brand: str,
) -> str:
    """desktop | mobile | tablet | other, following user-agents 2.2's is_tablet /
    is_mobile / is_pc in that order, plus "Generic Tablet", Symbian^3 and KaiOS. An iPad
    asking for the desktop site sends a Mac UA and is counted as desktop: only client
    hints could tell them apart. Added last: a UA with a uap device brand that is not a
    PC or TV is a (feature) phone ("SAMSUNG-SGH-E236", "MOT-c350i"): uap's device
    rules exist for handsets, and user-agents left those "other"."""
    if _is_tablet(ua, browser, os, os_version, device):
        return "tablet"
    if _is_mobile(ua, browser, os, device):
        return "mobile"
    if _is_pc(ua, os, os_version):
        return "desktop"
    if brand and not _TV_RE.search(ua):
        return "mobile"
    return "other"


def _is_android_tablet(ua: str, browser: str) -> bool:
    # Android tablets lack "Mobile" in the UA; old Galaxy Tabs are caught by family.
    return "Mobile Safari" not in ua and browser != "Firefox Mobile"


def _is_tablet(ua: str, browser: str, os: str, os_version: str, device: str) -> bool:
    return (device in _TABLET_DEVICE_FAMILIES
            or (os == "Android" and _is_android_tablet(ua, browser))
            or (os == "Windows" and os_version.startswith("RT"))
            or (os == "Firefox OS" and "Mobile" not in browser))


def _is_mobile(ua: str, browser: str, os: str, device: str) -> bool:
    return (device in _MOBILE_DEVICE_FAMILIES
            or browser in _MOBILE_BROWSER_FAMILIES
            or os in ("Android", "Firefox OS")  # tablets were already ruled out
            or (os == "BlackBerry OS" and device != "Blackberry Playbook")
            or os in _MOBILE_OS_FAMILIES
            or "J2ME" in ua or "MIDP" in ua or "iPhone;" in ua
            or ("NokiaBrowser" in ua and "Mobile" in ua))


def _is_pc(ua: str, os: str, os_version: str) -> bool:
    if "Windows NT" in ua or os in _PC_OS_FAMILIES or (os == "Windows" and os_version == "ME"):
        return True
    if os == "Mac OS X" and "Silk" not in ua:
        return True
    if "Maemo" in ua:
        return False
    return "Chrome OS" in os or ("Linux" in ua and "X11" in ua)
