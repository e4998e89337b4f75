"""Local-time enrichment: ``timezone``, ``local_hour``, ``local_day_of_week``, business hours.

"When do users act, in their own day?" needs the event time in the user's zone, not
in UTC. The zone is, in order of trust:

1. ``row["timezone"]`` when it is a valid IANA name (the SDK reads it from the device:
   ``Intl.DateTimeFormat().resolvedOptions().timeZone``);
2. ``row["geo_timezone"]``, the GeoIP location's zone (set by the ``geo`` enrichment,
   which therefore runs first);
3. ``"UTC"``.

Invalid names fall through to the next source and never raise: a client-sent string
must not dead-letter an event. ``row["timestamp"]`` is an aware UTC datetime (a naive
one is taken as UTC); anything else is a bad row (:class:`EnrichmentError`).
Conversion uses :mod:`zoneinfo`, so DST and half-hour offsets are exact; ``ZoneInfo``
objects (and misses) are cached per worker.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from transforms.enrichments.base import EnrichmentConfig, EnrichmentError

NAME = "time"

_MAX_TZ_LEN = 64  # longest IANA name is ~32 chars; longer strings are not zones
_ZONE_CACHE_SIZE = 1024  # bounded: the SDK value is client-controlled
_UTC_NAME = "UTC"
# Files in the system zoneinfo directory that load but are not IANA zone names:
# "localtime" would silently mean "wherever the worker runs".
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@dataclass(frozen=True)
class Config(EnrichmentConfig):
    """``business_hours``: [start, end) local hours; ``business_days``: ISO weekdays (1 = Mon)."""

    business_hours: tuple[int, int] = (9, 17)
    business_days: tuple[int, ...] = (1, 2, 3, 4, 5)

    def __post_init__(self) -> None:
        hours = self.business_hours
        if (not isinstance(hours, tuple) or len(hours) != 2
                or not all(isinstance(h, int) and not isinstance(h, bool) for h in hours)):
            raise ValueError(f"time: business_hours must be a (start, end) tuple of ints, "
                             f"got {hours!r}")
        start, end = hours
        if not (0 <= start < end <= 24):
            raise ValueError(f"time: business_hours needs 0 <= start < end <= 24, got {hours!r}")
        days = self.business_days
        if (not isinstance(days, tuple)
                or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7
                           for d in days)):
            raise ValueError(f"time: business_days must be a tuple of ISO weekdays 1..7, "
                             f"got {days!r}")
        if not isinstance(self.enabled, bool):
            raise ValueError(f"time: enabled must be a bool, got {self.enabled!r}")


@dataclass(frozen=True)
class TimeContext:
    """Per-worker state: config as fast lookups, and the bounded zone cache."""

    start_hour: int
    end_hour: int
    business_days: frozenset[int]
    zone: Callable[[Any], ZoneInfo | None]


def load_zone(name: Any) -> ZoneInfo | None:
    """The zone called ``name``, or None when it is not a valid IANA name on this system."""
    if not isinstance(name, str) or not name or len(name) > _MAX_TZ_LEN or name in _NOT_ZONES:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: malformed keys (absolute or "../" paths); OSError: e.g. a directory
        # name such as "America" on some platforms.
        return None


def open(cfg: Config) -> TimeContext:
    """Build the per-worker zone cache (``DoFn.setup``)."""
    start, end = cfg.business_hours
    return TimeContext(start, end, frozenset(cfg.business_days),
                       functools.lru_cache(maxsize=_ZONE_CACHE_SIZE)(load_zone))


def resolve_zone(row: dict[str, Any], ctx: TimeContext) -> tuple[str, ZoneInfo | None]:
    """``(name, zone)`` from the SDK value, then ``geo_timezone``; ``("UTC", None)`` last."""
    for key in ("timezone", "geo_timezone"):
        name = row.get(key)
        zone = ctx.zone(name)
        if zone is not None:
            return name, zone
    return _UTC_NAME, None


def enrich(row: dict[str, Any], ctx: TimeContext) -> dict[str, Any]:
    """Local-time columns for ``row``; raises :class:`EnrichmentError` without a timestamp."""
    ts = row.get("timestamp")
    if not isinstance(ts, datetime):
        raise EnrichmentError(f"time: timestamp must be a datetime, got {type(ts).__name__}")
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    name, zone = resolve_zone(row, ctx)
    local = ts.astimezone(zone) if zone is not None else ts.astimezone(UTC)
    hour = local.hour
    day = local.isoweekday()
    business = ctx.start_hour <= hour < ctx.end_hour and day in ctx.business_days
    return {
        "timezone": name,
        "local_hour": hour,
        "local_day_of_week": day,
        "is_business_hours": int(business),
    }
