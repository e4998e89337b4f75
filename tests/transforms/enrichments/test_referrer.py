import random

import pytest

from transforms.enrichments import referrer
from transforms.enrichments.referrer import COLUMNS, MEDIUMS, Config

PAGE = "https://www.shop.example/products/1?utm_source=x"


@pytest.fixture(scope="module")
def ctx():
    return referrer.open(Config(own_domains=("mycorp.example", "Www.Other-Brand.example")))


def ref(ctx, referrer_url, page_url=PAGE):
    out = referrer.enrich({"page_referrer": referrer_url, "page_url": page_url}, ctx)
    return tuple(out[c] for c in COLUMNS)


@pytest.mark.parametrize(("url", "expected"), [
    # search engines, with and without a term
    ("https://www.google.com/search?q=red+shoes&ie=utf-8",
     ("search", "Google", "red shoes", "www.google.com")),
    ("https://www.google.co.uk/", ("search", "Google", "", "www.google.co.uk")),
    ("https://www.bing.com/search?Q=caf%C3%A9%20au+lait", ("search", "Bing", "café au lait",
                                                           "www.bing.com")),
    ("https://duckduckgo.com/?q=privacy", ("search", "DuckDuckGo", "privacy", "duckduckgo.com")),
    ("https://yandex.ru/search/?text=abc", ("search", "Yandex", "abc", "yandex.ru")),
    ("https://www.bing.com/images/search?q=cat",
     ("search", "Bing Images", "cat", "www.bing.com")),
    # social
    ("https://www.facebook.com/", ("social", "Facebook", "", "www.facebook.com")),
    ("https://l.facebook.com/l.php?u=https%3A%2F%2Fshop.example",
     ("social", "Facebook", "", "l.facebook.com")),
    ("https://t.co/AbC123", ("social", "Twitter", "", "t.co")),
    ("https://x.com/someone/status/1", ("social", "Twitter", "", "x.com")),
    ("https://www.linkedin.com/feed/", ("social", "LinkedIn", "", "www.linkedin.com")),
    ("https://lnkd.in/abc", ("social", "LinkedIn", "", "lnkd.in")),
    # email
    ("https://mail.google.com/mail/u/0/", ("email", "Gmail", "", "mail.google.com")),
    ("https://outlook.live.com/mail/0/inbox", ("email", "Outlook.com", "", "outlook.live.com")),
    ("https://outlook.office.com/mail/", ("email", "Outlook.com", "", "outlook.office.com")),
    ("android-app://com.google.android.gm/", ("email", "Gmail", "", "com.google.android.gm")),
    # paid
    ("https://www.googleadservices.com/pagead/aclk?sa=L",
     ("paid", "Google", "", "www.googleadservices.com")),
    # chatbots (not in the bundled database: our CHATBOTS list)
    ("https://chatgpt.com/", ("chatbot", "ChatGPT", "", "chatgpt.com")),
    ("https://chat.openai.com/c/1", ("chatbot", "ChatGPT", "", "chat.openai.com")),
    ("https://www.perplexity.ai/search/abc", ("chatbot", "Perplexity", "", "www.perplexity.ai")),
    ("https://claude.ai/chat/1", ("chatbot", "Claude", "", "claude.ai")),
    ("https://gemini.google.com/app", ("chatbot", "Gemini", "", "gemini.google.com")),
    ("https://copilot.microsoft.com/", ("chatbot", "Copilot", "", "copilot.microsoft.com")),
    # known source, unknown medium
    ("https://drive.google.com/drive", ("unknown", "Google", "", "drive.google.com")),
    # unknown hosts keep the host, lower-cased, without port or trailing dot
    ("https://Blog.Example.ORG.:8443/post?q=1", ("unknown", "", "", "blog.example.org")),
    ("http://192.168.0.1:8080/x", ("unknown", "", "", "192.168.0.1")),
    ("http://[2001:db8::1]/", ("unknown", "", "", "2001:db8::1")),
    # IDN: punycode either way
    ("https://bücher.example/", ("unknown", "", "", "xn--bcher-kva.example")),
    ("https://xn--bcher-kva.example/", ("unknown", "", "", "xn--bcher-kva.example")),
    # direct
    ("", ("direct", "", "", "")),
    ("   ", ("direct", "", "", "")),
    # garbage: unknown with no host
    ("garbage", ("unknown", "", "", "")),
    ("www.google.com/search?q=x", ("unknown", "", "", "")),
    ("http://[::1", ("unknown", "", "", "")),
    ("http://not a host/", ("unknown", "", "", "")),
    ("https://", ("unknown", "", "", "")),
    ("http://xn--/", ("unknown", "", "", "xn--")),
])
def test_classification(ctx, url, expected):
    assert ref(ctx, url) == expected


@pytest.mark.parametrize(("url", "page"), [
    ("https://www.shop.example/cart", PAGE),  # same host
    ("https://shop.example/cart", PAGE),  # www. variant on the page side
    ("https://www.shop.example/", "https://shop.example/"),  # www. variant on the referrer
    ("https://pay.mycorp.example/done", PAGE),  # own domain, subdomain
    ("https://mycorp.example/", PAGE),  # own domain itself
    ("https://www.other-brand.example/", PAGE),  # own domain configured with www.
    ("https://www.google.com/search?q=x", "https://www.google.com/maps"),  # own site wins
    ("https://bücher.example/a", "https://xn--bcher-kva.example/b"),  # IDN vs punycode
    ("http://10.0.0.5:3000/a", "http://10.0.0.5:8080/b"),  # IP literal, other port
])
def test_internal(ctx, url, page):
    medium, source, term, host = ref(ctx, url, page)
    assert (medium, source, term) == ("internal", "", "")
    assert host


@pytest.mark.parametrize("page", ["", "garbage", None, 42, "https://[::1"])
def test_unusable_page_url_still_classifies(ctx, page):
    assert ref(ctx, "https://t.co/x", page)[0] == "social"


def test_not_internal_for_lookalike_domains(ctx):
    assert ref(ctx, "https://evilmycorp.example/")[0] == "unknown"
    assert ref(ctx, "https://shop.example.attacker.example/")[0] == "unknown"


def test_huge_referrer_is_bounded(ctx):
    url = "https://www.google.com/search?q=" + "a" * 1_000_000
    medium, source, term, host = ref(ctx, url)
    assert (medium, source, host) == ("search", "Google", "www.google.com")
    assert len(term) <= referrer.MAX_TERM_CHARS


@pytest.mark.parametrize("value", [None, 42, b"https://t.co/", ["x"]])
def test_non_string_referrer_is_direct(ctx, value):
    assert ref(ctx, value)[0] == "direct"


def test_disabled_and_not_mutating():
    ctx = referrer.open(Config(enabled=False))
    assert referrer.enrich({"page_referrer": "https://t.co/"}, ctx) == {}


def test_row_not_mutated(ctx):
    row = {"page_referrer": "https://t.co/", "page_url": PAGE, "referrer_medium": "old"}
    before = dict(row)
    referrer.enrich(row, ctx)
    assert row == before


def test_results_are_cached(ctx):
    ctx.parse.cache_clear()
    for _ in range(3):
        ref(ctx, "https://www.google.com/")
    info = ctx.parse.cache_info()
    assert (info.hits, info.misses) == (2, 1)


@pytest.mark.parametrize("kwargs", [
    {"own_domains": ["example.com"]},
    {"own_domains": ("https://example.com",)},
    {"own_domains": ("example.com/path",)},
    {"own_domains": ("localhost",)},
    {"own_domains": (42,)},
    {"cache_size": -1},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match=r"referrer\."):
        Config(**kwargs)


def test_random_strings_never_raise(ctx):
    rnd = random.Random(11)
    alphabet = "htps:/[]@.%?#=&qwxyz0123456789gole.cm\x00\ud800éЖ\u3002 -_"
    for _ in range(5000):
        s = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 60)))
        for candidate in (s, "https://" + s, "http://www.google.com/search?q=" + s):
            out = referrer.enrich({"page_referrer": candidate, "page_url": "https://" + s}, ctx)
            assert out["referrer_medium"] in MEDIUMS
            assert set(out) == set(COLUMNS)
