"""GeoIP enrichment: ``country``, ``region``, ``city`` and ``geo_timezone`` from ``ip_address``.

Reads a MaxMind-format *City* database with maxminddb (the reader under geoip2, by the
same maintainers), opened once per worker with its C extension in mmap mode
(``MODE_MMAP_EXT``): pages are shared between workers on one host. We read the four
fields we need from the raw record instead of building geoip2's model objects, which
cost more than the lookup itself (FINDINGS: ``city()`` ≈ 63k/s, ``get()`` ≈ 150k/s).

We ship no database, since a bundled one would silently go stale. Get one of:

- **MaxMind GeoLite2-City** (free account and licence key, updated twice a week):
  https://dev.maxmind.com/geoip/geolite2-free-geolocation-data, then
  ``geoipupdate`` or the download link gives ``GeoLite2-City.mmdb``;
- **DB-IP City Lite** (CC BY 4.0, no account, updated monthly):
  https://db-ip.com/db/download/ip-to-city-lite, the "MMDB" file
  ``dbip-city-lite-YYYY-MM.mmdb.gz`` (gunzip it).

Point ``RADIX_GEOIP_DB`` (or ``Config.db_path``) at the ``.mmdb`` file. Without one
the enrichment still runs and returns empty geo fields, so a fresh install works.

Output columns: ``country`` (ISO 3166-1 alpha-2), ``region`` (English name of the
first, i.e. largest, subdivision), ``city`` (English), and ``geo_timezone``: the
IANA zone of the location. ``geo_timezone`` is an *intermediate* key, not a
ClickHouse column: the time enrichment (``local_time``, run after this one) uses it
when the SDK sent no valid ``timezone``; the row writer drops unknown keys.

Private, loopback, link-local, reserved, multicast and unparseable addresses give
empty geo fields, not errors: they are normal in dev and behind proxies, and
dead-lettering the event would lose it for a missing dimension.

With ``anonymize_ip`` the address is truncated (IPv4 /24, IPv6 /48) *after* the
lookup, so location precision is kept while the stored ``ip_address`` is not
personal data. An unparseable address cannot be truncated and becomes ``""``.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import maxminddb

from transforms.enrichments.base import EnrichmentConfig

NAME = "geo"
ENV_DB_PATH = "RADIX_GEOIP_DB"

_log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_EMPTY_GEO = ("", "", "", "")
_MAX_IP_LEN = 45  # longest textual IPv6 (IPv4-mapped, full form); longer is not an IP
_V4_KEEP = ~0xFF & 0xFFFFFFFF  # zero the last octet
_V6_KEEP = ~((1 << 80) - 1) & ((1 << 128) - 1)  # zero the last 80 bits (keep /48)


def _default_db_path() -> str | None:
    return os.environ.get(ENV_DB_PATH) or None


@dataclass(frozen=True)
class Config(EnrichmentConfig):
    """``db_path``: a City ``.mmdb`` (default ``$RADIX_GEOIP_DB``); None means no geo."""

    db_path: str | None = field(default_factory=_default_db_path)
    anonymize_ip: bool = False
    cache_size: int = 8192  # LRU entries per worker, keyed on the IP string; 0 = no cache

    def __post_init__(self) -> None:
        if self.db_path is not None and (not isinstance(self.db_path, str) or not self.db_path):
            raise ValueError(f"geo: db_path must be a non-empty string or None, got "
                             f"{self.db_path!r}")
        if not isinstance(self.anonymize_ip, bool):
            raise ValueError(f"geo: anonymize_ip must be a bool, got {self.anonymize_ip!r}")
        if not isinstance(self.enabled, bool):
            raise ValueError(f"geo: enabled must be a bool, got {self.enabled!r}")
        if (not isinstance(self.cache_size, int) or isinstance(self.cache_size, bool)
                or self.cache_size < 0):
            raise ValueError(f"geo: cache_size must be an int >= 0, got {self.cache_size!r}")


# (country, region, city, geo_timezone, anonymised ip): a tuple so cached values are immutable.
Resolved = tuple[str, str, str, str, str]


@dataclass
class GeoContext:
    """Per-worker state: the reader (None when disabled or no database) and the IP cache."""

    cfg: Config
    reader: maxminddb.Reader | None
    mode: int | None  # the maxminddb open mode actually used
    resolve: Callable[[str], Resolved] = field(init=False)

    def __post_init__(self) -> None:
        # IPs repeat heavily (a session's events, NAT), and a hit in the LRU costs ~0.2 µs
        # against ~20 µs for parse + lookup + geoip2's model (bench/enrich_geo.py).
        bound = functools.partial(resolve, reader=self.reader,
                                  anonymize_ip=self.cfg.anonymize_ip)
        self.resolve = (functools.lru_cache(maxsize=self.cfg.cache_size)(bound)
                        if self.cfg.cache_size else bound)


def open(cfg: Config) -> GeoContext:
    """Open the database once per worker; raise ``ValueError`` if it is not a City DB.

    A missing file raises (``FileNotFoundError``): a configured but absent database is a
    deployment error the operator must see, unlike an unset ``db_path``.
    """
    if not cfg.enabled or cfg.db_path is None:
        if cfg.enabled:
            _log.warning("geo: no GeoIP database (set %s); geo fields stay empty",
                         ENV_DB_PATH)
        return GeoContext(cfg, None, None)
    mode = maxminddb.MODE_MMAP_EXT
    try:
        reader = maxminddb.open_database(cfg.db_path, mode=mode)
    except ValueError as exc:
        if "MODE_MMAP_EXT" not in str(exc):
            raise
        # The C extension is missing (e.g. built without libmaxminddb): the pure-Python
        # reader works but is several times slower.
        _log.warning("geo: maxminddb C extension unavailable (%s); falling back to "
                     "MODE_AUTO (pure Python, slower)", exc)
        mode = maxminddb.MODE_AUTO
        reader = maxminddb.open_database(cfg.db_path, mode=mode)
    db_type = reader.metadata().database_type
    if "City" not in db_type:
        reader.close()
        raise ValueError(f"geo: {cfg.db_path} is a {db_type!r} database; a City database "
                         "(e.g. GeoLite2-City or DB-IP City Lite) is required")
    return GeoContext(cfg, reader, mode)


def close(ctx: GeoContext) -> None:
    """Release the mmap (``DoFn.teardown``)."""
    if ctx.reader is not None:
        ctx.reader.close()


def parse_ip(value: Any) -> IPAddress | None:
    """The address in ``value``, or None when it is empty or not an IP."""
    if not isinstance(value, str) or not value or len(value) > _MAX_IP_LEN:
        return None
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def lookup_address(ip: IPAddress) -> IPAddress:
    """The address to look up: IPv4-mapped IPv6 (``::ffff:a.b.c.d``, dual-stack sockets) as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# IPv4 ranges that are not globally routable unicast (RFC 6890 and multicast/reserved),
# as sorted integer intervals: a bisect costs far less than ``IPv4Address.is_global``.
_V4_NOT_PUBLIC = sorted(
    (int(n.network_address), int(n.broadcast_address)) for n in map(ipaddress.ip_network, (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3")))
_V4_STARTS = [start for start, _ in _V4_NOT_PUBLIC]


def _public_v4(value: int) -> bool:
    i = bisect.bisect_right(_V4_STARTS, value) - 1
    return i < 0 or value > _V4_NOT_PUBLIC[i][1]


def is_public(ip: IPAddress) -> bool:
    """True for globally routable unicast addresses, the only ones a GeoIP DB locates."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _public_v4(int(ip))
    return ip.is_global and not ip.is_multicast


def _dotted_v4(value: str) -> int | None:
    """A strict dotted-quad IPv4 as an int (inet_pton refuses short forms), else None."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, value), "big")
    except OSError:
        return None


def anonymize(ip: IPAddress) -> str:
    """IPv4 with the last octet zeroed, IPv6 with the last 80 bits zeroed."""
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Address(int(ip) & _V4_KEEP))
    return str(ipaddress.IPv6Address(int(ip) & _V6_KEEP))


def _name(obj: Any) -> str:
    names = obj.get("names") if isinstance(obj, dict) else None
    value = names.get("en") if isinstance(names, dict) else None
    return value if isinstance(value, str) else ""


def lookup(ip: IPAddress | str, reader: maxminddb.Reader) -> tuple[str, str, str, str]:
    """``(country, region, city, geo_timezone)`` of a public ``ip``; empty when unknown."""
    try:
        rec = reader.get(ip)
    except ValueError:
        # An IPv6 address against an IPv4-only database: unknown, not a bad event.
        return _EMPTY_GEO
    if not isinstance(rec, dict):
        return _EMPTY_GEO
    country = rec.get("country") or {}
    subdivisions = rec.get("subdivisions") or ()
    location = rec.get("location") or {}
    return (
        (country.get("iso_code") or "") if isinstance(country, dict) else "",
        _name(subdivisions[0]) if isinstance(subdivisions, list) and subdivisions else "",
        _name(rec.get("city")),
        (location.get("time_zone") or "") if isinstance(location, dict) else "",
    )


def resolve(value: str, reader: maxminddb.Reader | None,
            anonymize_ip: bool) -> Resolved:
    """Everything ``enrich`` derives from one IP string (the cached unit)."""
    if reader is not None and not anonymize_ip:
        # Fast path for the common case, a plain IPv4: no ipaddress objects at all.
        v4 = _dotted_v4(value)
        if v4 is not None:
            return (*(lookup(value, reader) if _public_v4(v4) else _EMPTY_GEO), "")
    ip = parse_ip(value)
    target = lookup_address(ip) if ip is not None else None
    if target is None or reader is None or not is_public(target):
        fields = _EMPTY_GEO
    else:
        fields = lookup(target, reader)
    anonymised = anonymize(ip) if anonymize_ip and ip is not None else ""
    return (*fields, anonymised)


def enrich(row: dict[str, Any], ctx: GeoContext) -> dict[str, str]:
    """Geo columns for ``row`` (plus ``ip_address`` when anonymising); never raises on bad IPs."""
    value = row.get("ip_address")
    if not isinstance(value, str) or len(value) > _MAX_IP_LEN:
        value = ""  # not an IP; also keeps junk out of the cache
    country, region, city, geo_timezone, anonymised = ctx.resolve(value)
    out = {"country": country, "region": region, "city": city, "geo_timezone": geo_timezone}
    if ctx.cfg.anonymize_ip:
        out["ip_address"] = anonymised
    return out
