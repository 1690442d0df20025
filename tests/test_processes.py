"""``dispatcher serve`` as a real process: many concurrent test sends, and SIGKILL."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .databases import scalar
from .harness import Receiver, Reply, ServeProcess, poll

ADMIN = {"authorization": "Bearer test-admin-token-0123456789"}
PROTOCOL_TROUBLE = (
    "LocalProtocolError", "RemoteProtocolError", "Event loop is closed", "Unclosed",
    "unclosed", "Traceback", "Task was destroyed",
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("heavy")]  # see conftest.py


async def _burst(base: str, sub_id: str, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=base, headers=ADMIN, limits=limits,
                                 timeout=60) as client:
        return await asyncio.gather(
            *(client.post(f"/v1/subscriptions/{sub_id}/test", json={"data": {"n": i}})
              for i in range(count))
        )


def test_200_concurrent_test_sends_all_answer_correctly(tmp_path, database_url):
    server = ServeProcess(database_url, tmp_path / "serve.log",
                          DISPATCHER_DELIVERY_TIMEOUT_SECONDS="10").start()
    try:
        with Receiver(lambda n, r: Reply(200, b"slow ok", delay=0.5)) as slow, \
                Receiver(lambda n, r: Reply(close_without_answer=True)) as rude:
            sub = httpx.post(server.url + "/v1/subscriptions", headers=ADMIN,
                             json={"url": slow.url}).json()
            answers = asyncio.run(_burst(server.url, sub["id"], 200))
            assert [a.status_code for a in answers] == [200] * 200
            bodies = [a.json() for a in answers]
            assert all(b["status_code"] == 200 and b["outcome"] == "succeeded" for b in bodies)
            assert all(b["response_body"] == "slow ok" and b["error"] is None for b in bodies)
            assert all(b["duration_ms"] >= 450 for b in bodies)
            assert slow.count() == 200
            # The test send creates no event and no delivery.
            assert httpx.get(server.url + "/v1/deliveries", headers=ADMIN).json()["data"] == []

            sub = httpx.post(server.url + "/v1/subscriptions", headers=ADMIN,
                             json={"url": rude.url}).json()
            answers = asyncio.run(_burst(server.url, sub["id"], 200))
            assert [a.status_code for a in answers] == [200] * 200
            bodies = [a.json() for a in answers]
            assert all(b["status_code"] is None and b["outcome"] == "failed" for b in bodies)
            assert all(b["error"] for b in bodies)
    finally:
        code = server.stop()
    log = server.log()
    assert code == 0, log
    for trouble in PROTOCOL_TROUBLE:
        assert trouble not in log, log


def test_sigkill_with_deliveries_in_flight_loses_nothing(tmp_path, database_url):
    env = {"DISPATCHER_DELIVERY_TIMEOUT_SECONDS": "2", "DISPATCHER_RETRY_SCHEDULE": "0.2,0.5",
           "DISPATCHER_POLL_INTERVAL_SECONDS": "0.2"}
    server = ServeProcess(database_url, tmp_path / "serve.log", **env).start()
    with Receiver(lambda n, r: Reply(200, delay=1.0)) as receiver:
        try:
            sub = httpx.post(server.url + "/v1/subscriptions", headers=ADMIN,
                             json={"url": receiver.url}).json()
            accepted = [
                httpx.post(server.url + "/v1/events", headers=ADMIN,
                           json={"type": "order.created", "data": {"n": i}}).json()
                for i in range(50)
            ]
            assert all(a["deliveries"] == 1 for a in accepted)
            poll(lambda: receiver.count() >= 20, 10, message="deliveries in flight")
            server.kill()
            # The kill came mid-flight: leased deliveries that no answer has finished yet.
            leased = scalar(database_url, "SELECT count(*) FROM delivery WHERE status = "
                            "'pending' AND lease_owner IS NOT NULL")
            assert leased > 0
        finally:
            if server.process.poll() is None:
                server.kill()

        restarted = ServeProcess(database_url, tmp_path / "serve2.log", **env).start()
        try:
            def all_succeeded() -> bool:
                found = httpx.get(restarted.url + "/v1/deliveries", headers=ADMIN,
                                  params={"subscription_id": sub["id"], "limit": 500}).json()
                statuses = [d["status"] for d in found["data"]]
                return len(statuses) == 50 and set(statuses) == {"succeeded"}

            # Leases of the killed process run out 2 x 2 s + 10 s after their claim.
            poll(all_succeeded, 45, 0.25, message="every delivery succeeded after restart")
        finally:
            assert restarted.stop() == 0
        assert set(receiver.ids()) == {a["id"] for a in accepted}
