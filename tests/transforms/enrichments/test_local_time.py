"""Local-time enrichment: zone choice, DST and half-hour offsets, business hours."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from transforms.enrichments import local_time
from transforms.enrichments.base import EnrichmentError

CTX = local_time.open(local_time.Config())


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def run(ts: datetime, tz: Any = "", geo_tz: Any = "", ctx: local_time.TimeContext = CTX
        ) -> dict[str, Any]:
    return local_time.enrich({"timestamp": ts, "timezone": tz, "geo_timezone": geo_tz}, ctx)


@pytest.mark.parametrize(("ts", "tz", "hour", "dow"), [
    # New York spring forward, Sun 2024-03-10: 01:59 EST, then 03:00 EDT.
    (utc(2024, 3, 10, 6, 59), "America/New_York", 1, 7),
    (utc(2024, 3, 10, 7, 0), "America/New_York", 3, 7),
    # New York fall back, Sun 2024-11-03: 01:xx happens twice (EDT, then EST).
    (utc(2024, 11, 3, 5, 30), "America/New_York", 1, 7),
    (utc(2024, 11, 3, 6, 30), "America/New_York", 1, 7),
    (utc(2024, 11, 3, 7, 0), "America/New_York", 2, 7),
    # Berlin spring forward, Sun 2024-03-31: 01:59 CET, then 03:00 CEST.
    (utc(2024, 3, 31, 0, 59), "Europe/Berlin", 1, 7),
    (utc(2024, 3, 31, 1, 0), "Europe/Berlin", 3, 7),
    # Berlin fall back, Sun 2024-10-27: 02:59 CEST, then 02:00 CET.
    (utc(2024, 10, 27, 0, 59), "Europe/Berlin", 2, 7),
    (utc(2024, 10, 27, 1, 0), "Europe/Berlin", 2, 7),
    # Kolkata is UTC+05:30: the half hour decides the local hour and even the day.
    (utc(2024, 6, 3, 3, 29), "Asia/Kolkata", 8, 1),
    (utc(2024, 6, 3, 3, 30), "Asia/Kolkata", 9, 1),
    (utc(2024, 6, 2, 18, 29), "Asia/Kolkata", 23, 7),
    (utc(2024, 6, 2, 18, 30), "Asia/Kolkata", 0, 1),
    # West of UTC the local day is the previous one.
    (utc(2024, 6, 3, 2, 0), "America/Los_Angeles", 19, 7),
    (utc(2024, 6, 3, 2, 0), "UTC", 2, 1),
])
def test_local_hour_and_day(ts: datetime, tz: str, hour: int, dow: int) -> None:
    out = run(ts, tz)
    assert (out["timezone"], out["local_hour"], out["local_day_of_week"]) == (tz, hour, dow)


@pytest.mark.parametrize(("tz", "geo_tz", "expected"), [
    ("Asia/Kolkata", "Europe/Berlin", "Asia/Kolkata"),  # the SDK's valid value wins
    ("Mars/Base", "Europe/Berlin", "Europe/Berlin"),
    ("", "Europe/Berlin", "Europe/Berlin"),
    (None, "Europe/Berlin", "Europe/Berlin"),
    ("Mars/Base", "", "UTC"),
    ("Mars/Base", "Venus/Base", "UTC"),
    ("", "", "UTC"),
    ("america/new_york", "", "UTC"),  # IANA names are case-sensitive
    ("localtime", "", "UTC"),  # a file in /usr/share/zoneinfo, not a zone
    ("/etc/passwd", "", "UTC"),
    ("../../etc/passwd", "", "UTC"),
    ("America", "", "UTC"),
    ("America/", "", "UTC"),
    ("zone.tab", "", "UTC"),
    ("Europe/" + "x" * 10_000, "", "UTC"),
    (330, "", "UTC"),
])
def test_zone_choice_never_raises(tz: Any, geo_tz: Any, expected: str) -> None:
    assert run(utc(2024, 6, 3, 12, 0), tz, geo_tz)["timezone"] == expected


def test_missing_zone_keys_mean_utc() -> None:
    out = local_time.enrich({"timestamp": utc(2024, 6, 3, 23, 59)}, CTX)
    assert out == {"timezone": "UTC", "local_hour": 23, "local_day_of_week": 1,
                   "is_business_hours": 0}


def test_uses_geo_timezone_for_local_fields() -> None:
    out = run(utc(2024, 6, 3, 12, 0), "Mars/Base", "Asia/Kolkata")
    assert (out["timezone"], out["local_hour"]) == ("Asia/Kolkata", 17)


@pytest.mark.parametrize(("ts", "tz", "business"), [
    (utc(2024, 6, 3, 12, 59), "Europe/Berlin", 1),  # Mon 14:59 CEST
    (utc(2024, 6, 3, 6, 59), "Europe/Berlin", 0),  # Mon 08:59
    (utc(2024, 6, 3, 7, 0), "Europe/Berlin", 1),  # Mon 09:00: start inclusive
    (utc(2024, 6, 3, 14, 59), "Europe/Berlin", 1),  # Mon 16:59
    (utc(2024, 6, 3, 15, 0), "Europe/Berlin", 0),  # Mon 17:00: end exclusive
    (utc(2024, 6, 7, 14, 0), "Europe/Berlin", 1),  # Fri 16:00
    (utc(2024, 6, 8, 10, 0), "Europe/Berlin", 0),  # Sat
    (utc(2024, 6, 9, 10, 0), "Europe/Berlin", 0),  # Sun
    (utc(2024, 6, 3, 3, 30), "Asia/Kolkata", 1),  # Mon 09:00 IST
    (utc(2024, 6, 3, 11, 30), "Asia/Kolkata", 0),  # Mon 17:00 IST
    (utc(2024, 6, 3, 14, 0), "America/New_York", 1),  # Mon 10:00 EDT
    (utc(2024, 6, 8, 2, 0), "America/New_York", 0),  # Fri 22:00 EDT (Sat in UTC)
    (utc(2024, 6, 10, 2, 0), "America/New_York", 0),  # Sun 22:00 EDT (Mon in UTC)
])
def test_business_hours_default(ts: datetime, tz: str, business: int) -> None:
    assert run(ts, tz)["is_business_hours"] == business


def test_custom_business_hours_and_days() -> None:
    ctx = local_time.open(local_time.Config(business_hours=(0, 24), business_days=(6, 7)))
    assert run(utc(2024, 6, 8, 0, 0), "UTC", ctx=ctx)["is_business_hours"] == 1  # Sat 00:00
    assert run(utc(2024, 6, 9, 23, 59), "UTC", ctx=ctx)["is_business_hours"] == 1  # Sun 23:59
    assert run(utc(2024, 6, 10, 12, 0), "UTC", ctx=ctx)["is_business_hours"] == 0  # Mon


def test_naive_timestamp_is_utc() -> None:
    assert run(datetime(2024, 6, 3, 7, 0), "Europe/Berlin")["local_hour"] == 9


@pytest.mark.parametrize("ts", [None, "2024-06-03T07:00:00Z", 1717398000])
def test_non_datetime_timestamp_is_a_bad_row(ts: Any) -> None:
    with pytest.raises(EnrichmentError, match="time: timestamp"):
        local_time.enrich({"timestamp": ts, "timezone": "UTC"}, CTX)


def test_does_not_mutate_row() -> None:
    row = {"timestamp": utc(2024, 6, 3, 7, 0), "timezone": "Mars/Base",
           "geo_timezone": "Europe/Berlin"}
    before = dict(row)
    out = local_time.enrich(row, CTX)
    assert row == before
    assert set(out) == {"timezone", "local_hour", "local_day_of_week", "is_business_hours"}


def test_zones_are_cached() -> None:
    ctx = local_time.open(local_time.Config())
    for _ in range(3):
        run(utc(2024, 6, 3, 7, 0), "Mars/Base", "Europe/Berlin", ctx=ctx)
    info = ctx.zone.cache_info()  # type: ignore[attr-defined]
    assert (info.misses, info.hits) == (2, 4)


@pytest.mark.parametrize("kwargs", [
    {"business_hours": (17, 9)}, {"business_hours": (9, 9)}, {"business_hours": (-1, 17)},
    {"business_hours": (9, 25)}, {"business_hours": (9,)}, {"business_hours": [9, 17]},
    {"business_hours": (9.0, 17)}, {"business_hours": (True, 17)},
    {"business_days": (0, 1)}, {"business_days": (1, 8)}, {"business_days": [1, 2]},
    {"business_days": ("1",)}, {"enabled": "no"},
])
def test_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="time:"):
        local_time.Config(**kwargs)


def test_config_is_frozen() -> None:
    cfg = local_time.Config()
    with pytest.raises(AttributeError):
        cfg.business_hours = (8, 18)  # type: ignore[misc]
