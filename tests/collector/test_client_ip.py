"""Client addresses: X-Forwarded-For counts only through trusted proxies."""

import pytest

from collector.client_ip import client_ip, parse_networks

PROXIES = parse_networks("10.0.0.0/8, 192.0.2.7")


@pytest.mark.parametrize("peer, xff, trusted, expected", [
    ("203.0.113.5", [], PROXIES, "203.0.113.5"),
    ("203.0.113.5", ["198.51.100.1"], PROXIES, "203.0.113.5"),  # untrusted peer: header ignored
    ("203.0.113.5", ["198.51.100.1"], (), "203.0.113.5"),  # no proxies configured
    ("10.1.2.3", ["198.51.100.1"], PROXIES, "198.51.100.1"),
    ("10.1.2.3", ["1.1.1.1, 198.51.100.1"], PROXIES, "198.51.100.1"),  # spoofed left part
    ("10.1.2.3", ["198.51.100.1, 192.0.2.7"], PROXIES, "198.51.100.1"),  # two proxies
    ("10.1.2.3", ["198.51.100.1", "10.9.9.9"], PROXIES, "198.51.100.1"),  # two headers
    ("10.1.2.3", ["10.4.4.4, 10.9.9.9"], PROXIES, "10.4.4.4"),  # all hops trusted
    ("10.1.2.3", ["garbage, 10.9.9.9"], PROXIES, "10.9.9.9"),
    ("10.1.2.3", [], PROXIES, "10.1.2.3"),
    ("10.1.2.3", ["2001:db8::1"], PROXIES, "2001:db8::1"),
    ("::ffff:10.1.2.3", ["198.51.100.1"], PROXIES, "198.51.100.1"),  # IPv4-mapped peer
])
def test_client_ip(peer, xff, trusted, expected):
    assert client_ip(peer, xff, trusted) == expected


def test_bad_proxy_setting_is_an_error():
    with pytest.raises(ValueError, match="not-an-ip"):
        parse_networks("10.0.0.0/8,not-an-ip")
