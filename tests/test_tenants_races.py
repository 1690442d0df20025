"""A tenant deleted while events are published for it and subscriptions are made for it (by
its scoped key and by the admin): nothing of it is left alive or open, nothing answers 500,
and nothing more reaches its receiver. Another tenant carries on untouched."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from .conftest import ADMIN_TOKEN
from .harness import Receiver, Reply, poll

DOOMED, OTHER = "doomed-tenant", "other-tenant"
ALLOWED = {201, 202, 401, 404}


class Hammer:
    """Threads that send one kind of request each, as fast as answers come, until stopped;
    every answer is kept with when its request started."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.answers: list[tuple[str, float, int, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def add(self, kind: str, key: str, request: Callable[[httpx.Client, int], httpx.Response],
            pause: float) -> None:
        def run() -> None:
            with httpx.Client(base_url=self.base, timeout=30,
                              headers={"authorization": f"Bearer {key}"}) as client:
                for n in range(2000):  # bounded: stopped long before
                    if self.stopping.is_set():
                        return
                    started = time.monotonic()
                    answer = request(client, n)
                    body = answer.json() if answer.content else {}
                    with self.lock:
                        self.answers.append((kind, started, answer.status_code, body))
                    self.stopping.wait(pause)  # a steady stream, not a flood

        self.threads.append(threading.Thread(target=run, daemon=True))

    def count(self, kind: str, status: int) -> int:
        with self.lock:
            return sum(1 for k, _, s, _ in self.answers if (k, s) == (kind, status))

    def __enter__(self) -> Hammer:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)


def all_pages(admin: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params = {"limit": 500, **params}
    for _ in range(50):
        page = admin.get(path, params=params)
        assert page.status_code == 200, page.text
        found += page.json()["data"]
        if page.json()["next_cursor"] is None:
            return found
        params["cursor"] = page.json()["next_cursor"]
    raise AssertionError(f"too many pages of {path}")


def test_deleting_a_tenant_while_it_gets_events_and_subscriptions(serve):
    # Every third request fails: some deliveries are waiting for a retry when T goes.
    def flaky(n: int, _request: Any) -> Reply:
        return Reply(500 if n % 3 == 0 else 200, delay=0.02)

    with serve(poll_interval_seconds=0.1) as admin, Receiver(flaky) as doomed_receiver, \
            Receiver() as other_receiver:
        for tenant in (DOOMED, OTHER):
            assert admin.put(f"/v1/tenants/{tenant}", json={}).status_code == 201
        publisher = admin.post("/v1/api-keys", json={"role": "publisher", "name": "pub"})
        scoped = admin.post("/v1/api-keys", json={"role": "subscriber", "name": "doomed",
                                                  "tenant_id": DOOMED})
        assert (publisher.status_code, scoped.status_code) == (201, 201), scoped.text
        held = admin.post("/v1/subscriptions", json={"url": doomed_receiver.url,
                                                     "tenant_id": DOOMED, "enabled": False})
        assert held.status_code == 201, held.text
        other_sub = admin.post("/v1/subscriptions",
                               json={"url": other_receiver.url, "tenant_id": OTHER})
        assert other_sub.status_code == 201

        hammer = Hammer(str(admin.base_url))
        for i in range(3):
            hammer.add("event", publisher.json()["key"], lambda c, n, i=i: c.post(
                "/v1/events", json={"type": "order.created", "data": {"n": n, "thread": i},
                                    "tenant_id": DOOMED if (n + i) % 3 else OTHER}), 0.02)
        # Broadcasts reach T's subscriptions too, without naming T.
        hammer.add("broadcast", publisher.json()["key"], lambda c, n: c.post(
            "/v1/events", json={"type": "notice.sent", "data": {"n": n}, "broadcast": True}),
            0.05)
        hammer.add("scoped_sub", scoped.json()["key"], lambda c, n: c.post(
            "/v1/subscriptions", json={"url": doomed_receiver.url, "enabled": n % 4 != 0}), 0.1)
        hammer.add("admin_sub", ADMIN_TOKEN, lambda c, n: c.post(
            "/v1/subscriptions", json={"url": doomed_receiver.url, "tenant_id": DOOMED,
                                       "enabled": n % 4 != 0}), 0.1)
        with hammer:
            poll(lambda: hammer.count("event", 202) >= 60 and doomed_receiver.count() >= 20
                 and hammer.count("broadcast", 202) >= 10
                 and hammer.count("scoped_sub", 201) >= 5
                 and hammer.count("admin_sub", 201) >= 5, 30, message="traffic for the tenant")
            deleted = admin.delete(f"/v1/tenants/{DOOMED}")
            deleted_at = time.monotonic()
            assert deleted.status_code == 204, deleted.text
            # The traffic goes on a while against the deleted tenant.
            poll(lambda: hammer.count("scoped_sub", 401) >= 3
                 and hammer.count("admin_sub", 404) >= 3
                 and sum(1 for k, t, _, _ in list(hammer.answers)
                         if k == "event" and t > deleted_at) >= 30, 30,
                 message="requests after the deletion")
        answers = hammer.answers
        # Nothing but 201, 202, 401 and 404: no 500, no 409, no 503.
        assert {s for _, _, s, _ in answers} <= ALLOWED, Counter(
            (k, s) for k, _, s, _ in answers)
        after = [(kind, status, body) for kind, started, status, body in answers
                 if started > deleted_at]
        # After the deletion: T's key is refused, T is unknown, T's events reach no one.
        assert {s for k, s, _ in after if k == "scoped_sub"} == {401}
        assert {s for k, s, _ in after if k == "admin_sub"} == {404}
        for _kind, _status, body in after:
            if body.get("tenant_id") == DOOMED and "deliveries" in body:
                assert body["deliveries"] == 0, body

        # No subscription of T is left alive.
        made = [body["id"] for kind, _, status, body in answers
                if kind.endswith("_sub") and status == 201] + [held.json()["id"]]
        assert len(made) >= 11
        for sub_id in made:
            assert admin.get(f"/v1/subscriptions/{sub_id}").status_code == 404, sub_id
        assert all_pages(admin, "/v1/subscriptions", tenant_id=DOOMED) == []

        # No delivery of T stays open: cancelled, or settled before the deletion.
        def open_deliveries() -> list[dict[str, Any]]:
            return [d for d in all_pages(admin, "/v1/deliveries", tenant_id=DOOMED)
                    if d["status"] in ("pending", "held")]

        try:
            poll(lambda: not open_deliveries(), 20, 0.2, message="no open delivery of T")
        except AssertionError:
            left = open_deliveries()
            raise AssertionError(f"{len(left)} deliveries of the deleted tenant left open: "
                                 f"{Counter((d['status'], d['attempts']) for d in left)}, "
                                 f"e.g. {left[:3]}") from None
        statuses = Counter(d["status"] for d in all_pages(admin, "/v1/deliveries",
                                                          tenant_id=DOOMED))
        assert statuses["cancelled"] > 0 and statuses["succeeded"] > 0, statuses
        assert set(statuses) <= {"cancelled", "succeeded", "failed"}, statuses

        # Once the attempts in flight at the deletion are done, T's receiver hears no more.
        def quiet() -> bool:
            seen = doomed_receiver.count()
            time.sleep(1.0)  # a second with no request: the in-flight ones have landed
            return doomed_receiver.count() == seen

        poll(quiet, 20, 0, message="T's receiver quiet")
        heard = doomed_receiver.count()
        watch_until = time.monotonic() + 2.0  # longer than the retry schedule (0.2, 0.4)
        while time.monotonic() < watch_until:
            assert doomed_receiver.count() == heard, "a request after the tenant's deletion"
            time.sleep(0.05)

        # The other tenant lost nothing: each of its events arrived, all succeeded.
        other_events = {body["id"] for kind, _, status, body in answers
                        if kind == "event" and body.get("tenant_id") == OTHER
                        or kind == "broadcast" and status == 202}
        assert other_events
        poll(lambda: other_events <= set(other_receiver.ids()), 20,
             message="the other tenant's events")
        poll(lambda: {d["status"] for d in all_pages(admin, "/v1/deliveries",
                                                     tenant_id=OTHER)} == {"succeeded"}, 20,
             message="the other tenant's deliveries succeeded")
        assert set(other_receiver.ids()) == other_events
        assert admin.get(f"/v1/subscriptions/{other_sub.json()['id']}").status_code == 200
