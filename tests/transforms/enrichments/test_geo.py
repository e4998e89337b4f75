"""GeoIP enrichment against a City database the fixture writes with mmdb-writer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import maxminddb
import pytest

from tests.fixtures.geoip import city_record, write_city_db
from transforms.enrichments import geo

EMPTY = {"country": "", "region": "", "city": "", "geo_timezone": ""}
PARIS = {"country": "FR", "region": "Île-de-France", "city": "Paris",
         "geo_timezone": "Europe/Paris"}
MOUNTAIN_VIEW = {"country": "US", "region": "California", "city": "Mountain View",
                 "geo_timezone": "America/Los_Angeles"}
BERLIN_V6 = {"country": "DE", "region": "Land Berlin", "city": "Berlin",
             "geo_timezone": "Europe/Berlin"}
# A country-level record: no subdivisions, no city (common for mobile and anycast ranges).
SINGAPORE = {"country": "SG", "region": "", "city": "", "geo_timezone": "Asia/Singapore"}


@pytest.fixture(scope="module")
def city_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_city_db(tmp_path_factory.mktemp("geoip") / "city.mmdb", [
        ("81.2.69.0/24", city_record("FR", "Paris", "Europe/Paris", ["Île-de-France"])),
        ("8.8.8.0/24", city_record("US", "Mountain View", "America/Los_Angeles",
                                   ["California", "Santa Clara County"])),
        ("2a00:1450:4001::/48", city_record("DE", "Berlin", "Europe/Berlin", ["Land Berlin"])),
        ("2a02:1234::/32", city_record("SG", time_zone="Asia/Singapore")),
        # Private ranges present in the DB: the enrichment must not even ask.
        (["10.0.0.0/8", "192.168.0.0/16"], city_record("ZZ", "Nowhere", "UTC", ["X"])),
    ])


@pytest.fixture(scope="module")
def ctx(city_db: Path) -> Iterator[geo.GeoContext]:
    c = geo.open(geo.Config(db_path=str(city_db)))
    yield c
    geo.close(c)


@pytest.fixture(scope="module")
def anon_ctx(city_db: Path) -> Iterator[geo.GeoContext]:
    c = geo.open(geo.Config(db_path=str(city_db), anonymize_ip=True))
    yield c
    geo.close(c)


def test_opens_with_the_c_extension(ctx: geo.GeoContext) -> None:
    assert ctx.mode == maxminddb.MODE_MMAP_EXT


@pytest.mark.parametrize(("ip", "expected"), [
    ("81.2.69.142", PARIS),
    ("8.8.8.8", MOUNTAIN_VIEW),  # first subdivision only
    (" 8.8.8.8 ", MOUNTAIN_VIEW),
    ("2a00:1450:4001::1", BERLIN_V6),
    ("2A00:1450:4001:ffff::abcd", BERLIN_V6),
    ("2a02:1234:5678::9", SINGAPORE),
    ("::ffff:81.2.69.142", PARIS),  # IPv4-mapped IPv6
])
def test_known_addresses(ctx: geo.GeoContext, ip: str, expected: dict[str, str]) -> None:
    assert geo.enrich({"ip_address": ip}, ctx) == expected


@pytest.mark.parametrize("ip", ["1.1.1.1", "81.2.70.1", "2606:4700::1111", "2a00:1450:4002::1"])
def test_not_in_database(ctx: geo.GeoContext, ip: str) -> None:
    assert geo.enrich({"ip_address": ip}, ctx) == EMPTY


@pytest.mark.parametrize("ip", [
    "10.1.2.3", "192.168.1.10", "127.0.0.1", "172.16.0.1", "100.64.0.1", "169.254.1.1",
    "0.0.0.0", "255.255.255.255", "224.0.0.1", "240.0.0.1",
    "::1", "::", "fe80::1", "fc00::1", "ff02::1", "::ffff:10.0.0.1", "2001:db8::1",
])
def test_non_public_addresses_are_empty(ctx: geo.GeoContext, ip: str) -> None:
    assert geo.enrich({"ip_address": ip}, ctx) == EMPTY


@pytest.mark.parametrize("ip", [
    "", "   ", "999.1.1.1", "abc", "1.2.3", "1.2.3.4/24", "::g", "1" * 10_000, "8.8.8.8" * 100,
    None, 12345,
])
def test_invalid_strings_are_empty(ctx: geo.GeoContext, ip: object) -> None:
    assert geo.enrich({"ip_address": ip}, ctx) == EMPTY


def test_missing_ip_is_empty(ctx: geo.GeoContext) -> None:
    assert geo.enrich({}, ctx) == EMPTY


def test_does_not_mutate_row_and_returns_only_geo_columns(ctx: geo.GeoContext) -> None:
    row = {"ip_address": "81.2.69.142", "event_name": "x"}
    out = geo.enrich(row, ctx)
    assert row == {"ip_address": "81.2.69.142", "event_name": "x"}
    assert set(out) == set(EMPTY)


@pytest.mark.parametrize(("ip", "anonymised", "expected"), [
    ("81.2.69.142", "81.2.69.0", PARIS),
    ("8.8.8.255", "8.8.8.0", MOUNTAIN_VIEW),
    ("2a00:1450:4001:ffff:1:2:3:4", "2a00:1450:4001::", BERLIN_V6),
    ("2a02:1234:5678:9abc::1", "2a02:1234:5678::", SINGAPORE),
    ("192.168.7.9", "192.168.7.0", EMPTY),  # private: still anonymised
    ("fe80::1:2", "fe80::", EMPTY),
    ("abc", "", EMPTY),  # cannot truncate what does not parse: drop it
    ("", "", EMPTY),
])
def test_anonymisation_after_lookup(anon_ctx: geo.GeoContext, ip: str, anonymised: str,
                                    expected: dict[str, str]) -> None:
    assert geo.enrich({"ip_address": ip}, anon_ctx) == {**expected, "ip_address": anonymised}


def test_ip_left_alone_without_anonymisation(ctx: geo.GeoContext) -> None:
    assert "ip_address" not in geo.enrich({"ip_address": "81.2.69.142"}, ctx)


def test_wrong_database_type_is_rejected(tmp_path: Path) -> None:
    path = write_city_db(tmp_path / "asn.mmdb", [("8.8.8.0/24", {"autonomous_system_number": 1})],
                         database_type="GeoLite2-ASN")
    with pytest.raises(ValueError, match=r"GeoLite2-ASN.*City database"):
        geo.open(geo.Config(db_path=str(path)))


def test_configured_but_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        geo.open(geo.Config(db_path=str(tmp_path / "nope.mmdb")))


def test_no_database_gives_empty_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(geo.ENV_DB_PATH, raising=False)
    cfg = geo.Config()
    assert cfg.db_path is None
    ctx = geo.open(cfg)
    assert ctx.reader is None
    assert geo.enrich({"ip_address": "8.8.8.8"}, ctx) == EMPTY


def test_db_path_defaults_to_env(monkeypatch: pytest.MonkeyPatch, city_db: Path) -> None:
    monkeypatch.setenv(geo.ENV_DB_PATH, str(city_db))
    ctx = geo.open(geo.Config())
    assert geo.enrich({"ip_address": "8.8.8.8"}, ctx) == MOUNTAIN_VIEW
    geo.close(ctx)


def test_disabled_does_not_open_the_database(tmp_path: Path) -> None:
    ctx = geo.open(geo.Config(db_path=str(tmp_path / "absent.mmdb"), enabled=False))
    assert ctx.reader is None


def test_falls_back_to_mode_auto_without_c_extension(
        monkeypatch: pytest.MonkeyPatch, city_db: Path, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(maxminddb, "_extension", None)
    ctx = geo.open(geo.Config(db_path=str(city_db)))
    assert ctx.mode == maxminddb.MODE_AUTO
    assert "C extension unavailable" in caplog.text
    assert geo.enrich({"ip_address": "2a00:1450:4001::1"}, ctx) == BERLIN_V6
    geo.close(ctx)


def test_cached_results_are_fresh_dicts(city_db: Path) -> None:
    ctx = geo.open(geo.Config(db_path=str(city_db), cache_size=4))
    first = geo.enrich({"ip_address": "81.2.69.142"}, ctx)
    first["city"] = "changed"
    assert geo.enrich({"ip_address": "81.2.69.142"}, ctx) == PARIS
    assert ctx.resolve.cache_info().hits == 1  # type: ignore[attr-defined]
    geo.close(ctx)


@pytest.mark.parametrize("ip", ["81.2.69.142", "2a00:1450:4001::1", "10.0.0.1", "abc", ""])
@pytest.mark.parametrize("anonymize_ip", [False, True])
def test_uncached_matches_cached(city_db: Path, ip: str, anonymize_ip: bool) -> None:
    cached = geo.open(geo.Config(db_path=str(city_db), anonymize_ip=anonymize_ip))
    plain = geo.open(geo.Config(db_path=str(city_db), anonymize_ip=anonymize_ip, cache_size=0))
    assert not hasattr(plain.resolve, "cache_info")
    assert geo.enrich({"ip_address": ip}, plain) == geo.enrich({"ip_address": ip}, cached)
    geo.close(cached)
    geo.close(plain)


@pytest.mark.parametrize("kwargs", [
    {"db_path": ""}, {"db_path": 3}, {"anonymize_ip": "yes"}, {"enabled": 1},
    {"cache_size": -1}, {"cache_size": 1.5}, {"cache_size": True},
])
def test_config_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="geo:"):
        geo.Config(**kwargs)  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    cfg = geo.Config(db_path=None)
    with pytest.raises(AttributeError):
        cfg.anonymize_ip = True  # type: ignore[misc]
