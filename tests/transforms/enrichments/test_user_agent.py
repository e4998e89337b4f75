"""User-agent enrichment: real UAs, hostile input, cache, agreement with uap's reference."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from ua_parser import Domain, load_builtins
from ua_parser.basic import Resolver as BasicResolver

from transforms.enrichments import user_agent as ua_enrich
from transforms.enrichments.base import EnrichmentError

CORPUS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "user_agents.txt"


@pytest.fixture(scope="module")
def ctx() -> ua_enrich.Context:
    return ua_enrich.open(ua_enrich.Config())


def _row(ua: object) -> dict[str, object]:
    return {"event_id": "e1", "user_agent": ua}


# (id, UA, browser, browser_version, os, os_version, device_type, maker, model, is_bot)
CASES = [
    ("chrome-windows",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.6099.130 Safari/537.36",
     "Chrome", "120.0.6099", "Windows", "10", "desktop", "", "", 0),
    ("safari-iphone",
     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1",
     "Mobile Safari", "17.1.2", "iOS", "17.1.2", "mobile", "Apple", "iPhone", 0),
    ("ipad",
     "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/16.6 Mobile/15E148 Safari/604.1",
     "Mobile Safari", "16.6", "iOS", "16.6", "tablet", "Apple", "iPad", 0),
    ("android-phone",
     "Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/119.0.6045.163 Mobile Safari/537.36",
     "Chrome Mobile", "119.0.6045", "Android", "13", "mobile", "Samsung", "SM-S918B", 0),
    ("android-tablet",
     "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/119.0.6045.163 Safari/537.36",
     "Chrome", "119.0.6045", "Android", "13", "tablet", "", "SM-X710", 0),
    ("android-reduced-ua",  # Chrome's frozen "K" model is a placeholder, not a model
     "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Mobile Safari/537.36",
     "Chrome Mobile", "120.0.0", "Android", "10", "mobile", "", "", 0),
    ("firefox-linux",
     "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
     "Firefox", "120.0", "Ubuntu", "", "desktop", "", "", 0),
    ("edge",
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
     "Edge", "120.0.2210", "Windows", "10", "desktop", "", "", 0),
    ("safari-mac",
     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.1 Safari/605.1.15",
     "Safari", "17.1", "Mac OS X", "10.15.7", "desktop", "Apple", "Mac", 0),
    ("cubot-is-not-a-bot",
     "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/96.0.4664.45 Mobile Safari/537.36",
     "Chrome Mobile", "96.0.4664", "Android", "9", "mobile", "Cubot", "P30", 0),
    ("googlebot",
     "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "Googlebot", "2.1", "", "", "bot", "", "", 1),
    ("googlebot-smartphone",
     "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Chrome/120.0.6099.129 Mobile Safari/537.36 "
     "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "Googlebot", "2.1", "Android", "6.0.1", "bot", "", "", 1),
    ("bingbot",
     "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
     "bingbot", "2.0", "", "", "bot", "", "", 1),
    ("curl", "curl/8.4.0", "curl", "8.4.0", "", "", "bot", "", "", 1),
    ("python-requests", "python-requests/2.31.0",
     "Python Requests", "2.31", "", "", "bot", "", "", 1),
    ("go-http-client", "Go-http-client/1.1", "Go-http-client", "1.1", "", "", "bot", "", "", 1),
    ("headless-chrome",
     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "HeadlessChrome/120.0.6099.28 Safari/537.36",
     "HeadlessChrome", "120.0.6099", "Linux", "", "bot", "", "", 1),
    ("okhttp-app-client-is-not-a-bot", "okhttp/4.12.0",
     "okhttp", "4.12.0", "", "", "other", "", "", 0),
    ("empty", "", "", "", "", "", "", "", "", 0),
    ("whitespace", "   ", "", "", "", "", "", "", "", 0),
]


@pytest.mark.parametrize(
    ("ua", "browser", "browser_version", "os", "os_version", "device_type", "maker", "model",
     "is_bot"),
    [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_real_user_agents(ctx: ua_enrich.Context, ua: str, browser: str, browser_version: str,
                          os: str, os_version: str, device_type: str, maker: str, model: str,
                          is_bot: int) -> None:
    assert ua_enrich.enrich(_row(ua), ctx) == {
        "browser": browser, "browser_version": browser_version, "os": os,
        "os_version": os_version, "device_type": device_type,
        "device_manufacturer": maker, "device_model": model, "is_bot": is_bot,
    }


HOSTILE = [
    ("100kb-garbage", "".join(random.Random(7).choice("aZ9;/()._- \t") for _ in range(100_000))),
    ("100kb-chrome-prefix", CASES[0][1] + "x" * 100_000),
    ("surrogates", b"Mozilla/5.0 (\xff\xfe; Linux) \xc3(".decode("utf-8", "surrogateescape")),
    ("lone-high-surrogate", "Mozilla/5.0 \ud800 Firefox/1.0"),
    ("control-chars", "Mozilla/5.0\x00\x01\x1b[31m\r\n(Windows NT 10.0) Chrome/1.2.3"),
    ("non-bmp", "Mozilla/5.0 🦀 (Linux; Android 13; 📱) Chrome/1.0 Mobile Safari/537.36"),
]


@pytest.mark.parametrize("ua", [h[1] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_strings_never_raise(ctx: ua_enrich.Context, ua: str) -> None:
    out = ua_enrich.enrich(_row(ua), ctx)
    assert set(out) == set(ua_enrich.COLUMNS)
    assert out["device_type"] in {"desktop", "mobile", "tablet", "bot", "other", ""}
    assert out["is_bot"] in (0, 1)
    assert all(isinstance(v, str) and v not in ("Other", "None")
               for k, v in out.items() if k != "is_bot")


def test_long_ua_is_capped_so_the_prefix_decides(ctx: ua_enrich.Context) -> None:
    padded = ua_enrich.enrich(_row(CASES[0][1] + " " + "x" * 100_000), ctx)
    assert padded["browser"] == "Chrome"
    assert padded["device_type"] == "desktop"


def test_missing_ua_is_empty_and_non_string_dead_letters(ctx: ua_enrich.Context) -> None:
    assert ua_enrich.enrich({"event_id": "e1"}, ctx)["device_type"] == ""
    assert ua_enrich.enrich(_row(None), ctx)["is_bot"] == 0
    with pytest.raises(EnrichmentError):
        ua_enrich.enrich(_row(42), ctx)


def test_row_is_not_mutated_and_only_ua_columns_returned(ctx: ua_enrich.Context) -> None:
    row = _row(CASES[1][1])
    before = dict(row)
    out = ua_enrich.enrich(row, ctx)
    assert row == before
    assert tuple(out) == ua_enrich.COLUMNS


def test_cache_hit_returns_the_same_parsed_object() -> None:
    ctx = ua_enrich.open(ua_enrich.Config(cache_size=8))
    ua = CASES[0][1]
    first = ctx.lookup(ua)
    assert ctx.lookup.cache_info().misses == 1  # type: ignore[attr-defined]
    assert ctx.lookup(ua) is first
    assert ctx.lookup.cache_info().hits == 1  # type: ignore[attr-defined]
    # enrich goes through the cache and hands out a fresh dict each time
    a, b = ua_enrich.enrich(_row(ua), ctx), ua_enrich.enrich(_row(ua), ctx)
    assert a == b and a is not b
    assert ctx.lookup.cache_info().hits == 3  # type: ignore[attr-defined]
    a["browser"] = "mutated"
    assert ua_enrich.enrich(_row(ua), ctx)["browser"] == "Chrome"


def test_cache_is_bounded() -> None:
    ctx = ua_enrich.open(ua_enrich.Config(cache_size=2))
    for i in range(5):
        ua_enrich.enrich(_row(f"curl/{i}.0"), ctx)
    assert ctx.lookup.cache_info().currsize == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("bad", [-1, 10_000_001, 1.5, "100", True])
def test_config_rejects_bad_cache_size(bad: object) -> None:
    with pytest.raises(ValueError, match="cache_size"):
        ua_enrich.Config(cache_size=bad)  # type: ignore[arg-type]


def test_config_is_frozen_and_has_enabled() -> None:
    cfg = ua_enrich.Config()
    assert cfg.enabled is True and ua_enrich.NAME == "user_agent"
    with pytest.raises(AttributeError):
        cfg.cache_size = 1  # type: ignore[misc]


def _dotted(part: object) -> str:
    if part is None:
        return ""
    return ".".join(v for v in (part.major, part.minor, part.patch) if v)  # type: ignore[attr-defined]


def _family(part: object) -> str:
    family = getattr(part, "family", "") if part is not None else ""
    return "" if family == "Other" else family


@pytest.mark.skipif(not CORPUS.exists(), reason=f"{CORPUS} not present")
def test_agrees_with_pure_python_reference_resolver(ctx: ua_enrich.Context) -> None:
    """The Rust fast path must give what uap-core's regexes give (the basic resolver)."""
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    sample = random.Random(2024).sample(lines, 2_000)
    reference = BasicResolver(load_builtins())
    mismatches = []
    for ua in sample:
        ref = reference(ua.strip(), Domain.USER_AGENT | Domain.OS)
        browser = _family(ref.user_agent)
        os = _family(ref.os)
        want = (browser, _dotted(ref.user_agent) if browser else "",
                os, _dotted(ref.os) if os else "")
        out = ua_enrich.enrich(_row(ua), ctx)
        got = (out["browser"], out["browser_version"], out["os"], out["os_version"])
        if got != want:
            mismatches.append((ua, got, want))
    assert mismatches == []
