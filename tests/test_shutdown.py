"""SIGTERM: stop claiming, let attempts in flight finish within the grace period, give back
the rest, exit 0. Nothing accepted is lost either way."""

from __future__ import annotations

import httpx
import pytest

from .databases import scalar
from .harness import Receiver, Reply, ServeProcess, poll

ADMIN = {"authorization": "Bearer test-admin-token-0123456789"}
pytestmark = pytest.mark.slow


def start(database_url, log, **env) -> ServeProcess:
    return ServeProcess(database_url, log, DISPATCHER_WORKER_CONCURRENCY="256",
                        DISPATCHER_MAX_IN_FLIGHT_PER_SUBSCRIPTION="256",
                        DISPATCHER_DELIVERY_TIMEOUT_SECONDS="8", **env).start()


def post_events(server: ServeProcess, url: str, count: int) -> None:
    """``count`` events for one subscription, held until all are in, then released at once:
    their attempts are all in flight together however slowly the events went in."""
    with httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as admin:
        sub = admin.post("/v1/subscriptions", json={"url": url, "enabled": False})
        sub.raise_for_status()
        for n in range(count):
            admin.post("/v1/events", json={"type": "a.b", "data": {"n": n}}).raise_for_status()
        admin.patch(f"/v1/subscriptions/{sub.json()['id']}",
                    json={"enabled": True}).raise_for_status()


def test_sigterm_lets_200_attempts_in_flight_finish(database_url, tmp_path):
    server = start(database_url, tmp_path / "serve.log", DISPATCHER_SHUTDOWN_GRACE_SECONDS="15")
    with Receiver(lambda n, r: Reply(200, b"done", delay=6.0)) as receiver:
        post_events(server, receiver.url, 200)
        poll(lambda: receiver.count() == 200, 20, message="200 attempts in flight")
        assert scalar(database_url, "SELECT count(*) FROM attempt") == 0  # none answered yet
        assert server.stop() == 0, server.log()
    assert scalar(database_url, "SELECT count(*) FROM delivery WHERE status = 'succeeded' "
                                "AND lease_owner IS NULL") == 200
    # No attempt was cut off: every one got the receiver's whole answer.
    assert scalar(database_url, "SELECT count(*) FROM attempt WHERE outcome = 'succeeded' "
                                "AND status_code = 200 AND response_body = 'done'") == 200


def test_attempts_past_the_grace_period_are_given_back_and_sent_after_restart(database_url,
                                                                              tmp_path):
    server = start(database_url, tmp_path / "serve.log", DISPATCHER_SHUTDOWN_GRACE_SECONDS="1")
    replies = {"slow": True}
    with Receiver(lambda n, r: Reply(200, delay=6.0 if replies["slow"] else 0)) as receiver:
        post_events(server, receiver.url, 20)
        poll(lambda: receiver.count() == 20, 20, message="20 attempts in flight")
        assert server.stop() == 0, server.log()
        # Cut off after the grace period: not recorded, and their leases were released.
        assert scalar(database_url, "SELECT count(*) FROM attempt") == 0
        assert scalar(database_url, "SELECT count(*) FROM delivery WHERE status = 'pending' "
                                    "AND lease_owner IS NULL") == 20
        replies["slow"] = False
        again = start(database_url, tmp_path / "serve2.log")
        try:
            poll(lambda: scalar(database_url, "SELECT count(*) FROM delivery "
                                              "WHERE status = 'succeeded'") == 20, 20,
                 message="sent at once after the restart, no lease to wait for")
        finally:
            assert again.stop() == 0
