"""Tenants across processes: a worker killed with SIGKILL while attempts to several tenants'
receivers are in flight loses nothing, and no tenant ever receives another tenant's event."""

from __future__ import annotations

import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from .databases import scalar
from .harness import ApiProcess, Receiver, Reply, ServeProcess, WorkerProcess, poll

ADMIN = {"authorization": "Bearer test-admin-token-0123456789"}
TENANTS = ("acme", "globex", "initech", "umbrella")
SLOW = {"acme", "globex"}  # their receivers answer after a second: attempts stay in flight
PROCESS_ENV = {
    # Leases are 2 x 2 s + 10 s: the killed worker's deliveries are due again within 14 s.
    "DISPATCHER_DELIVERY_TIMEOUT_SECONDS": "2",
    "DISPATCHER_RETRY_SCHEDULE": "0.2,0.5",
    "DISPATCHER_POLL_INTERVAL_SECONDS": "0.2",
    # Few attempts per subscription and worker: the slow tenants' queues take seconds.
    "DISPATCHER_MAX_IN_FLIGHT_PER_SUBSCRIPTION": "2",
}

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("heavy")]  # see conftest.py


def owner_of(worker: WorkerProcess) -> str:
    found = re.search(r"worker (wrk_[0-9a-f]+) started", worker.log())
    assert found, worker.log()
    return found.group(1)


def all_deliveries(api: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 500}
    with httpx.Client(base_url=api, headers=ADMIN, timeout=30) as admin:
        for _ in range(20):
            page = admin.get("/v1/deliveries", params=params)
            assert page.status_code == 200, page.text
            found += page.json()["data"]
            if page.json()["next_cursor"] is None:
                return found
            params["cursor"] = page.json()["next_cursor"]
    raise AssertionError("more pages of deliveries than expected")


def publish(api: str) -> dict[str | None, set[str]]:
    """300 events: 60 for each tenant, 40 of no tenant, 20 broadcasts; the event ids each
    receiver must get, by tenant (None: the tenant-less subscription)."""
    plan: list[dict[str, Any]] = []
    for n in range(300):
        if n % 15 == 14:
            plan.append({"broadcast": True})
        elif n % 15 in (4, 9):
            plan.append({})
        else:
            plan.append({"tenant_id": TENANTS[n % 4]})
    wanted: dict[str | None, set[str]] = {t: set() for t in (*TENANTS, None)}
    with httpx.Client(base_url=api, headers=ADMIN, timeout=30,
                      limits=httpx.Limits(max_connections=8)) as admin:
        def post(n: int) -> dict[str, Any]:
            answer = admin.post("/v1/events", json={"type": "order.created", "data": {"n": n},
                                                    **plan[n]})
            assert answer.status_code == 202, answer.text
            return answer.json()

        with ThreadPoolExecutor(8) as pool:  # eight at a time: quick on a busy machine
            accepted = list(pool.map(post, range(len(plan))))
    for audience, event in zip(plan, accepted, strict=True):
        assert event["tenant_id"] == audience.get("tenant_id")
        assert event["broadcast"] is bool(audience.get("broadcast"))
        assert event["deliveries"] == (len(wanted) if audience.get("broadcast") else 1)
        for tenant in (wanted if audience.get("broadcast") else [audience.get("tenant_id")]):
            wanted[tenant].add(event["id"])
    assert sum(map(len, wanted.values())) == 240 + 40 + 20 * 5
    return wanted


def test_sigkill_mid_flight_with_four_tenants_delivers_each_its_own(engine, database_url,
                                                                    tmp_path):
    def reply(tenant: str | None):
        return lambda n, r: Reply(200, delay=1.0 if tenant in SLOW else 0.0)

    processes: list[ServeProcess] = []
    doomed: ServeProcess | None = None
    with ExitStack() as stack:
        receivers = {t: stack.enter_context(Receiver(reply(t))) for t in (*TENANTS, None)}
        stack.callback(stop_all, processes, lambda: doomed)
        if engine == "postgresql":
            api = ApiProcess(database_url, tmp_path / "api.log", **PROCESS_ENV).start()
            workers = [WorkerProcess(database_url, tmp_path / f"worker{i}.log",
                                     **PROCESS_ENV).start() for i in range(2)]
            processes += [api, *workers]
            doomed = workers[0]
            survivor = owner_of(workers[1])
        else:
            api = ServeProcess(database_url, tmp_path / "serve.log", **PROCESS_ENV).start()
            worker = WorkerProcess(database_url, tmp_path / "worker.log", **PROCESS_ENV).start()
            processes += [api, worker]
            doomed, survivor = api, owner_of(worker)

        secrets: dict[str | None, str] = {}
        with httpx.Client(base_url=api.url, headers=ADMIN, timeout=30) as admin:
            for tenant, receiver in receivers.items():
                if tenant is not None:
                    assert admin.put(f"/v1/tenants/{tenant}", json={}).status_code == 201
                sub = admin.post("/v1/subscriptions",
                                 json={"url": receiver.url, "tenant_id": tenant})
                assert sub.status_code == 201, sub.text
                assert sub.json()["tenant_id"] == tenant
                secrets[tenant] = sub.json()["secret"]
        wanted = publish(api.url)
        total = sum(map(len, wanted.values()))

        def leased_by_doomed() -> int:
            return scalar(database_url, "SELECT count(*) FROM delivery WHERE status = "
                          "'pending' AND lease_owner IS NOT NULL AND lease_owner <> :alive",
                          alive=survivor)

        def mid_flight() -> tuple[int, int] | None:
            seen, leased = sum(r.count() for r in receivers.values()), leased_by_doomed()
            return (seen, leased) if 0 < seen < total and leased > 0 else None

        poll(mid_flight, 30, 0.05, message="attempts of the doomed worker in flight")
        doomed.kill()
        # The kill came mid-flight: its leased deliveries wait for their leases to run out.
        assert leased_by_doomed() > 0
        assert sum(r.count() for r in receivers.values()) < total
        replacement = type(doomed)(database_url, tmp_path / "replacement.log",
                                   **PROCESS_ENV).start()
        processes.append(replacement)
        if doomed is api:
            api = replacement

        def missing() -> dict[str | None, int]:
            return {t: len(wanted[t] - set(r.ids())) for t, r in receivers.items()
                    if wanted[t] - set(r.ids())}

        poll(lambda: not missing(), 60, 0.25, message="every event at its receivers")

        def statuses() -> Counter[str]:
            return Counter(d["status"] for d in all_deliveries(api.url))

        poll(lambda: statuses() == {"succeeded": total}, 30, 0.25,
             message=f"all {total} deliveries succeeded")
        delivered = all_deliveries(api.url)
        by_sub_tenant = Counter(d["tenant_id"] for d in delivered)
        assert by_sub_tenant == {t: len(wanted[t]) for t in wanted}
        for tenant, receiver in receivers.items():
            got = receiver.ids()
            # Exactly its own events and the broadcasts: not one of another tenant's.
            assert set(got) == wanted[tenant], tenant
            for request in receiver.requests:
                Webhook(secrets[tenant]).verify(request.body, request.headers)
    for process in processes:
        assert "Traceback" not in process.log(), process.log()


def stop_all(processes: list[ServeProcess], doomed: Any) -> None:
    """SIGTERM for every process still running (the killed one is gone): each exits 0."""
    codes = {p.log_path.name: p.stop() for p in processes if p is not doomed()}
    assert set(codes.values()) <= {0}, {p.log_path.name: p.log() for p in processes}
