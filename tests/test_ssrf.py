"""The connect-time address check: no delivery reaches an internal address, whatever the
URL looked like when the subscription was made."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading

import pytest

from dispatcher.database import open_database
from dispatcher.store import Store
from dispatcher.targets import AddressGuard

from .harness import Receiver, poll
from .test_delivery import attempts_of, deliveries_of, publish

TRANSPORTS = ["aiohttp", "httpx"]


def planted_subscription(settings, url: str) -> dict:
    """A subscription stored without the creation-time check (as if the name had resolved
    to a public address then)."""

    async def plant() -> dict:
        store = Store(open_database(settings))
        try:
            return await store.create_subscription("key_x", {"url": url})
        finally:
            await store.db.dispose()

    return asyncio.run(plant())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_delivery_to_a_blocked_address_fails_once_without_retry(make_settings, serve,
                                                                transport):
    with Receiver() as receiver:
        planted_subscription(make_settings(), receiver.url.replace("127.0.0.1", "localhost"))
        with serve(allow_private_targets=False, http_transport=transport) as admin:
            event = publish(admin)
            [delivery] = poll(lambda: [d for d in deliveries_of(admin, event["id"])
                                       if d["status"] != "pending"], 10)
            assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
            [attempt] = attempts_of(admin, delivery["id"])
            assert attempt["status_code"] is None
            assert attempt["error"].startswith("blocked_address")
            # The test send is checked the same way.
            answer = admin.post(f"/v1/subscriptions/{delivery['subscription_id']}/test").json()
            assert answer["outcome"] == "failed" and answer["error"].startswith("blocked_address")
        assert receiver.count() == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_allowed_cidrs_let_an_internal_target_through(make_settings, serve, transport):
    with Receiver() as receiver:
        planted_subscription(make_settings(), receiver.url)
        with serve(allow_private_targets=False, allowed_cidrs=("127.0.0.0/8",),
                   http_transport=transport) as admin:
            event = publish(admin)
            poll(lambda: receiver.count() == 1)
            poll(lambda: deliveries_of(admin, event["id"])[0]["status"] == "succeeded")


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this machine")
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ipv6_loopback_is_blocked(make_settings, serve, transport):
    class V6Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    try:
        server = V6Server(("::1", 0), Handler)
    except OSError:
        pytest.skip("cannot listen on ::1")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        planted_subscription(make_settings(), f"http://[::1]:{server.server_address[1]}/x")
        with serve(allow_private_targets=False, http_transport=transport) as admin:
            event = publish(admin)
            [delivery] = poll(lambda: [d for d in deliveries_of(admin, event["id"])
                                       if d["status"] == "failed"], 10)
            assert attempts_of(admin, delivery["id"])[0]["error"].startswith("blocked_address")
        assert hits == []
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.5.4", False),
        ("192.168.0.10", False), ("169.254.169.254", False), ("0.0.0.0", False),
        ("100.64.0.1", False), ("224.0.0.1", False), ("::1", False), ("fc00::1", False),
        ("fe80::1%eth0", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
        ("::", False), ("8.8.8.8", True), ("1.1.1.1", True), ("2606:4700::1111", True),
    ],
)
def test_address_guard_table(address, allowed):
    assert AddressGuard(False).permits(address) is allowed
    assert AddressGuard(True).permits(address) is True


def test_allowed_cidrs_open_only_their_range():
    guard = AddressGuard(False, ["10.20.0.0/16", "fd00::/8"])
    assert guard.permits("10.20.3.4") and guard.permits("fd00::5")
    assert guard.permits("::ffff:10.20.3.4")  # IPv4-mapped form of an allowed address
    assert not guard.permits("10.21.0.1") and not guard.permits("127.0.0.1")


# Every address form of the guard's table, plus the spellings a resolver reads as loopback.
ADDRESS_FORMS = [
    "127.0.0.1", "10.1.2.3", "172.16.5.4", "192.168.0.10", "169.254.169.254", "0.0.0.0",
    "100.64.0.1", "224.0.0.1", "[::1]", "[fc00::1]", "[fe80::1%25eth0]",
    "[::ffff:127.0.0.1]", "[::ffff:10.0.0.1]", "[::]", "8.8.8.8", "1.1.1.1",
    "[2606:4700::1111]", "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "localhost",
    "sub.localhost",
]
ALLOWED = ("127.0.0.0/8", "10.0.0.0/8", "fc00::/7")


def test_allowed_cidrs_apply_at_creation_as_at_connect_time(serve):
    guard = AddressGuard(False, ALLOWED)
    with serve(allow_private_targets=False, allowed_cidrs=ALLOWED) as admin:
        outcomes = {}
        for host in ADDRESS_FORMS:
            answer = admin.post("/v1/subscriptions", json={"url": f"http://{host}:9/dead"})
            outcomes[host] = answer.status_code
            if answer.status_code == 422:
                error = answer.json()["error"]
                assert error["code"] == "invalid_url"
                assert "DISPATCHER_ALLOWED_CIDRS" in error["message"], error
            else:
                assert answer.status_code == 201, answer.text
    # The connect-time guard decides the same for the address each form stands for.
    expected = {}
    for host in ADDRESS_FORMS:
        literal = host.strip("[]").replace("%25", "%")
        if host in ("127.1", "2130706433", "0x7f000001", "0177.0.0.1", "localhost",
                    "sub.localhost"):
            literal = "127.0.0.1"
        expected[host] = 201 if guard.permits(literal) else 422
    assert outcomes == expected
    assert outcomes["127.0.0.1"] == outcomes["localhost"] == outcomes["10.1.2.3"] == 201
    assert outcomes["192.168.0.10"] == outcomes["[::1]"] == outcomes["169.254.169.254"] == 422


def test_without_allowed_cidrs_the_refusal_names_both_settings(serve):
    with serve(allow_private_targets=False) as admin:
        answer = admin.post("/v1/subscriptions", json={"url": "http://127.0.0.1:9/dead"})
    assert answer.status_code == 422
    message = answer.json()["error"]["message"]
    assert "DISPATCHER_ALLOWED_CIDRS" in message and "127.0.0.1/32" in message
    assert "DISPATCHER_ALLOW_PRIVATE_TARGETS" in message
