"""dispatcher.targets: which URLs a subscription may point at.

Contract (API.md, Subscriptions): `url` must be http/https with a host; targets in private,
loopback, link-local, multicast or reserved ranges are refused (422) unless the operator
allowed them (DISPATCHER_ALLOW_PRIVATE_TARGETS=true).
"""

from __future__ import annotations

import ipaddress

import pytest

from dispatcher.targets import (
    MAX_URL_LENGTH,
    AddressGuard,
    InvalidTarget,
    check_url,
    is_blocked_address,
)

PUBLIC = [
    "http://example.com",
    "https://example.com",
    "https://hooks.example.com/in",
    "https://hooks.example.com:8443/in?x=1&y=2#frag",
    "HTTPS://Example.COM/Path",
    "http://8.8.8.8/hook",
    "https://1.1.1.1:443/",
    "http://[2606:4700:4700::1111]/hook",
    "http://[::ffff:8.8.8.8]/",  # IPv4-mapped public address
    "https://xn--bcher-kva.example/",
    "http://localhost.example.com/",  # only a name, not this machine
    "http://mylocalhost/",
    "https://example.com:65535/",
    "https://example.com:1/",
]

PRIVATE = [
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/hook",
    "http://127.255.255.254/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://172.31.255.255/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://0.0.0.0/",
    "http://100.64.0.1/",  # shared address space (CGNAT)
    "http://192.0.2.1/",  # documentation (reserved)
    "http://198.18.0.1/",  # benchmarking
    "http://255.255.255.255/",
    "http://[::1]/",
    "http://[::1]:8000/hook",
    "http://[::]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[2001:db8::1]/",  # documentation
    "http://224.0.0.1/",  # multicast
    "http://239.255.255.250/",
    "http://[ff02::1]/",
    "http://240.0.0.1/",  # reserved
    "http://localhost/",
    "http://localhost:8000/hook",
    "http://LOCALHOST/",
    "http://localhost./",
    "http://foo.localhost/",
    "http://a.b.localhost:9000/",
    "http://localhost.localdomain/",
    "http://ip6-localhost/",
    "http://ip6-loopback/",
]

# IPv4 literals in the non-dotted-quad forms that getaddrinfo/inet_aton (and so the HTTP
# client) read as 127.0.0.1. They are IP literals for a loopback address all the same.
NON_CANONICAL_LOOPBACK = [
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
]

ALWAYS_REFUSED = [
    "ftp://x",
    "ftp://example.com/file",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "ws://example.com/",
    "http://",
    "https://",
    "http:///path",
    "http://:80/",
    "example.com/hook",  # no scheme
    "//example.com/hook",
    "hooks.example.com",
    "",
    "http://user:pass@example.com/",
    "http://user@example.com/",
    "https://:secret@example.com/",
    "http://example.com /",
    " http://example.com/",
    "http://example.com/\n",
    "http://exa mple.com/",
    "http://example.com/\tpath",
    "http://example.com/\x00",
    "http://example.com:0/",
    "http://example.com:65536/",
    "http://example.com:99999/",
    "http://example.com:port/",
    "http://[::1/",
    "http://example.com/" + "a" * MAX_URL_LENGTH,
]


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("url", PUBLIC)
def test_public_urls_are_accepted(url, allow_private):
    assert check_url(url, AddressGuard(allow_private)) == url


@pytest.mark.parametrize("url", PRIVATE)
def test_private_targets_refused_unless_allowed(url):
    with pytest.raises(InvalidTarget):
        check_url(url, AddressGuard(False))


@pytest.mark.parametrize("url", PRIVATE + NON_CANONICAL_LOOPBACK)
def test_private_targets_accepted_when_allowed(url):
    assert check_url(url, AddressGuard(True)) == url


@pytest.mark.parametrize("url", NON_CANONICAL_LOOPBACK)
def test_non_canonical_ipv4_loopback_literals_refused(url):
    with pytest.raises(InvalidTarget):
        check_url(url, AddressGuard(False))


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize("url", ALWAYS_REFUSED, ids=repr)
def test_always_refused(url, allow_private):
    with pytest.raises(InvalidTarget) as info:
        check_url(url, AddressGuard(allow_private))
    assert str(info.value)  # says why


def test_invalid_target_is_a_value_error():
    assert issubclass(InvalidTarget, ValueError)


def test_url_at_max_length_is_accepted():
    url = "https://example.com/"
    url += "a" * (MAX_URL_LENGTH - len(url))
    assert len(url) == MAX_URL_LENGTH
    assert check_url(url, AddressGuard(False)) == url


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("8.8.8.8", False),
        ("1.1.1.1", False),
        ("93.184.216.34", False),
        ("2606:4700:4700::1111", False),
        ("2a00:1450:4001::1", False),
        ("::ffff:8.8.8.8", False),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("10.0.0.1", True),
        ("10.1.2.3", True),
        ("172.16.0.1", True),
        ("172.31.255.255", True),
        ("192.168.1.1", True),
        ("169.254.169.254", True),
        ("0.0.0.0", True),
        ("100.64.0.1", True),
        ("192.0.0.1", True),
        ("192.0.2.1", True),
        ("198.51.100.1", True),
        ("203.0.113.1", True),
        ("198.18.0.1", True),
        ("224.0.0.1", True),
        ("239.255.255.250", True),
        ("240.0.0.1", True),
        ("255.255.255.255", True),
        ("::1", True),
        ("::", True),
        ("fc00::1", True),
        ("fd00::1", True),
        ("fe80::1", True),
        ("ff02::1", True),
        ("ff0e::1", True),  # global-scope multicast is still multicast
        ("2001:db8::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", True),
        ("::ffff:169.254.169.254", True),
        ("::ffff:224.0.0.1", True),
        ("2002:7f00:1::", True),  # 6to4 wrapping 127.0.0.1
        ("2002:a00:1::", True),  # 6to4 wrapping 10.0.0.1
    ],
)
def test_is_blocked_address(address, blocked):
    assert is_blocked_address(ipaddress.ip_address(address)) is blocked
