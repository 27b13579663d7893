"""Addresses as `goemo-cockpit --web` reads them: which host is loopback, which is every address, and what an
IP literal is. Stdlib only: both cockpit.web (imported by the CLI, free of aiohttp) and cockpit.web_guard
(the server's checks) use it."""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = ("localhost",)
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host names literally ([::1] and ::ffff:127.0.0.1 included, the latter as IPv4), or None."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and localhost."""
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    address = ip_address(host)
    return address is not None and address.is_loopback
