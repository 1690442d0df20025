"""Which URLs a subscription may point at.

At creation the URL must be http(s) with a host, and a host that is an IP literal (or a
name for this machine, like ``localhost``) must be an address the ``AddressGuard`` permits:
not private, loopback, link-local, multicast or reserved, unless the operator allows private
targets or the address is in ``DISPATCHER_ALLOWED_CIDRS``. Names are not resolved here: what
a name resolves to can change, so the same guard checks the resolved address at connect time.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")


class InvalidTarget(ValueError):
    """The URL may not be used as a subscription target; the message says why."""


def is_blocked_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_blocked_address(mapped)
    return not address.is_global or address.is_multicast


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host stands for without DNS, legacy IPv4 forms included.

    Resolvers read ``127.1``, ``2130706433``, ``0x7f000001`` and ``0177.0.0.1`` as
    127.0.0.1, so they are checked as that address.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def check_url(url: str, guard: AddressGuard) -> str:
    """The URL, normalised a little; raises InvalidTarget."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidTarget(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise InvalidTarget("url contains white space or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidTarget(f"url is not valid: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidTarget("url must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise InvalidTarget("url has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidTarget("url must not carry credentials; use subscription headers")
    if port == 0:
        raise InvalidTarget("url port must be between 1 and 65535")
    name = host.rstrip(".").lower()
    if name in LOCAL_NAMES or name.endswith(".localhost"):
        # A name for this machine stands for its loopback addresses; one permitted is enough.
        if not any(guard.permits(a) for a in LOOPBACK_ADDRESSES):
            raise InvalidTarget(_refusal(f"{host}, this machine", "127.0.0.0/8"))
        return url
    address = _ip_literal(host)
    if address is not None and not guard.permits_address(address):
        raise InvalidTarget(_refusal(str(address), _network_hint(address)))
    return url


def _network_hint(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    shown = mapped or address
    return f"{shown}/{shown.max_prefixlen}"


def _refusal(what: str, cidr: str) -> str:
    return (f"url points at {what}, a private, loopback, link-local, multicast or reserved "
            f"address; to allow it, add its range to DISPATCHER_ALLOWED_CIDRS (for example "
            f"{cidr}) or set DISPATCHER_ALLOW_PRIVATE_TARGETS=true")


class BlockedAddress(OSError):
    """A connection to a refused address was not made."""

    def __init__(self, address: str) -> None:
        super().__init__(f"blocked_address: {address} is private, loopback, link-local, "
                         "multicast or reserved")
        self.address = address


class AddressGuard:
    """The connect-time check: is this resolved address one we may send to?

    Applied to every address a connection is about to use, after DNS, so a name that
    resolves to an internal address (DNS rebinding included) is refused even if it pointed
    elsewhere when the subscription was made.
    """

    def __init__(self, allow_private: bool, allowed: Sequence[str] = ()) -> None:
        self.allow_private = allow_private
        self.allowed = [ipaddress.ip_network(c, strict=False) for c in allowed]

    def permits(self, address: str) -> bool:
        """May a connection go to this address (as a resolver gives it, zone id included)?"""
        return self.permits_address(ipaddress.ip_address(address.split("%", 1)[0]))

    def permits_address(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if self.allow_private:
            return True
        if any(ip in net for net in self.allowed):
            return True
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            if any(ip.ipv4_mapped in net for net in self.allowed):
                return True
        return not is_blocked_address(ip)

    def check(self, address: str) -> None:
        if not self.permits(address):
            raise BlockedAddress(address)


def guard_for(settings: Any) -> AddressGuard:
    """The guard ``settings`` (``Settings``) ask for: at creation as at connect time."""
    return AddressGuard(settings.allow_private_targets, settings.allowed_cidrs)
