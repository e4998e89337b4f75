import pytest

from transforms.enrichments import campaign
from transforms.enrichments.campaign import COLUMNS, MAX_VALUE_CHARS, Config

CTX = campaign.open(Config())


def utm(url, ctx=CTX):
    out = campaign.enrich({"page_url": url}, ctx)
    return tuple(out[c] for c in COLUMNS)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://shop.example/p?utm_source=news&utm_medium=email&utm_campaign=bf26"
     "&utm_term=shoes&utm_content=hero",
     ("news", "email", "bf26", "shoes", "hero")),
    # keys are case-insensitive
    ("https://shop.example/?UTM_Source=Google&Utm_Medium=CPC",
     ("Google", "CPC", "", "", "")),
    # + and %xx decoded, unicode values, surrounding whitespace stripped
    ("https://shop.example/?utm_campaign=black+friday%20%C3%A9t%C3%A9&utm_term=%20a%2Bb%20",
     ("", "", "black friday été", "a+b", "")),
    # first non-empty occurrence wins
    ("https://shop.example/?utm_source=&utm_source=first&utm_source=second",
     ("first", "", "", "", "")),
    # encoded key
    ("https://shop.example/?utm%5Fsource=enc", ("enc", "", "", "", "")),
    # fragment parameters do not count
    ("https://app.example/#/landing?utm_source=frag", ("", "", "", "", "")),
    ("https://app.example/?utm_medium=social#utm_source=frag", ("", "social", "", "", "")),
    # invalid percent-encoding and invalid UTF-8 never raise
    ("https://shop.example/?utm_source=%zz%&utm_medium=%ff", ("%zz%", "\ufffd", "", "", "")),
    ("https://shop.example/", ("", "", "", "", "")),
    ("not a url at all ?? == && utm_source", ("", "", "", "", "")),
    ("", ("", "", "", "", "")),
    ("?utm_source=bare", ("bare", "", "", "", "")),
    ("https://ex.example/?utm_source", ("", "", "", "", "")),
    ("https://ex.example/?=&&&=utm_source&utm_source==x", ("=x", "", "", "", "")),
])
def test_utm_tags(url, expected):
    assert utm(url) == expected


@pytest.mark.parametrize(("query", "source", "medium"), [
    ("gclid=abc", "google", "paid"),
    ("gbraid=abc", "google", "paid"),
    ("wbraid=abc", "google", "paid"),
    ("fbclid=abc", "facebook", "paid"),
    ("msclkid=abc", "bing", "paid"),
    ("ttclid=abc", "tiktok", "paid"),
    ("li_fat_id=abc", "linkedin", "paid"),
    ("GCLID=abc", "google", "paid"),
    # utm_source kept, medium filled
    ("utm_source=newsletter&gclid=abc", "newsletter", "paid"),
    # utm_medium present: click id ignored entirely
    ("utm_medium=email&gclid=abc", "", "email"),
    # empty click id carries no information
    ("gclid=", "", ""),
    # Config order decides when several are present
    ("fbclid=1&gclid=2", "google", "paid"),
])
def test_click_ids(query, source, medium):
    out = utm("https://shop.example/?" + query)
    assert (out[0], out[1]) == (source, medium)


def test_config_click_ids_and_medium():
    ctx = campaign.open(Config(click_ids=(("yclid", "yandex"),), paid_medium="cpc"))
    assert utm("https://x.example/?yclid=1", ctx)[:2] == ("yandex", "cpc")
    assert utm("https://x.example/?gclid=1", ctx)[:2] == ("", "")


@pytest.mark.parametrize("kwargs", [
    {"click_ids": (("gclid",),)},
    {"click_ids": [("gclid", "google")]},
    {"click_ids": (("", "google"),)},
    {"paid_medium": " "},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match=r"campaign\."):
        Config(**kwargs)


def test_disabled_returns_nothing():
    ctx = campaign.open(Config(enabled=False))
    assert campaign.enrich({"page_url": "https://x.example/?utm_source=a"}, ctx) == {}


def test_values_are_capped_and_huge_urls_are_bounded():
    long = "x" * 100_000
    out = utm(f"https://x.example/?utm_campaign={long}&utm_source=s")
    assert out[2] == "x" * MAX_VALUE_CHARS
    # past the scanned prefix of the query: not seen
    assert out[0] == ""


@pytest.mark.parametrize("value", [None, 42, b"https://x.example/?utm_source=a", {"a": 1}])
def test_non_string_page_url(value):
    assert campaign.enrich({"page_url": value}, CTX) == dict.fromkeys(COLUMNS, "")


def test_missing_page_url_and_row_not_mutated():
    assert campaign.enrich({}, CTX) == dict.fromkeys(COLUMNS, "")
    row = {"page_url": "https://x.example/?utm_source=a", "utm_source": "old"}
    before = dict(row)
    campaign.enrich(row, CTX)
    assert row == before


def test_random_strings_never_raise():
    import random
    rnd = random.Random(7)
    alphabet = "utm_sorcegl id=&?#%+éЖ\x00\ud800 ABCxyz0123456789"
    for _ in range(3000):
        s = "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 80)))
        out = campaign.enrich({"page_url": s}, CTX)
        assert set(out) == set(COLUMNS)
