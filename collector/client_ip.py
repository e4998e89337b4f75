"""The client's IP address: the peer, or ``X-Forwarded-For`` only through trusted proxies.

A forwarded address is believed only when every hop after it is a proxy we configured
(``RADIX_TRUSTED_PROXIES``: addresses or CIDR networks, comma-separated). Walking the
header from the right, the first address that is not a trusted proxy is the client;
anything a client wrote further left is ignored, so it cannot spoof its address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Networks = tuple[Network, ...]


def parse_networks(spec: str) -> Networks:
    """``"10.0.0.0/8, 127.0.0.1"`` -> networks; a bad entry is an error, not ignored."""
    nets = []
    for part in spec.split(","):
        part = part.strip()
        if part:
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"trusted proxy {part!r} is not an IP address or network") \
                    from None
    return tuple(nets)


def _trusted(addr: str, trusted: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in net for net in trusted)


def client_ip(peer: str | None, forwarded_for: Iterable[str], trusted: Networks) -> str | None:
    """The address to record for a request from ``peer`` with these X-Forwarded-For values."""
    if not trusted or peer is None or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage from an untrusted party: stop at the last proxy we trust
        client = hop
        if not _trusted(hop, trusted):
            break
    return client
