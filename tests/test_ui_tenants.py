"""Tenants in the dashboard (issue 14), over plain HTTP: the tenants page and its counts, a
tenant's page, the tenant filter of the subscriptions and deliveries pages and of the bulk
replay, bad input, and tenant names escaped wherever they are shown."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
from markupsafe import escape

from .conftest import ADMIN_TOKEN
from .harness import AppServer, Receiver, Reply, poll
from .test_delivery import attempts_of, deliveries_of, subscribe
from .test_ui import CSRF, logged_in

# A tenant name that would run if it were not escaped.
ACME_NAME = "<script>alert('acme')</script> & Co"
METADATA = {"plan": "<b>pro</b>", "seats": 5, "regions": ["eu", "us"]}


@dataclass
class World:
    server: AppServer
    admin: httpx.Client
    subs: dict[str, dict]  # by role: a_pending, a_failed, a_off, a_ok, g_failed, g_gone, none
    deliveries: dict[str, dict]  # the first delivery of each subscription, by the same role
    events: dict[str, dict]  # acme, globex, globex2, none


def put_tenant(admin: httpx.Client, tenant_id: str, **body: object) -> dict:
    answer = admin.put(f"/v1/tenants/{tenant_id}", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def publish_for(admin: httpx.Client, tenant_id: str | None, n: int) -> dict:
    body = {"type": "order.created", "data": {"n": n},
            **({"tenant_id": tenant_id} if tenant_id else {})}
    answer = admin.post("/v1/events", json=body)
    assert answer.status_code == 202, answer.text
    return answer.json()


def delivery_states(admin: httpx.Client, event_id: str) -> dict[str, tuple[str, int]]:
    return {d["subscription_id"]: (d["status"], d["attempts"])
            for d in deliveries_of(admin, event_id)}


@pytest.fixture
def world(make_settings) -> Iterator[World]:
    """Two tenants, acme and globex (newest), and initech with nothing; a 500 is retried only
    after 10 minutes, so a failing receiver leaves its delivery pending.

    acme: a_pending (500: pending, failing), a_failed (400: failed, failing), a_off
    (disabled: held), a_ok (200: succeeded), and a deleted one; globex: g_failed (400, two
    events: 2 failed, failing), g_gone (410 to the first event: failed, disabled with its
    streak still on, so not counted as failing; the second event held); and one
    subscription of no tenant (400)."""
    with AppServer(make_settings(retry_schedule=(600.0,))) as server, httpx.Client(
            base_url=server.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30) as admin, \
            Receiver(lambda n, r: Reply(500, b"down")) as down, \
            Receiver(lambda n, r: Reply(400, b"no")) as refusing, \
            Receiver(lambda n, r: Reply(410, b"gone")) as gone, Receiver() as fine:
        put_tenant(admin, "initech")
        put_tenant(admin, "acme", name=ACME_NAME, metadata=METADATA)
        put_tenant(admin, "globex", name="Globex")
        where = {"a_pending": ("acme", down), "a_failed": ("acme", refusing),
                 "a_off": ("acme", fine), "a_ok": ("acme", fine), "a_gone": ("acme", fine),
                 "g_failed": ("globex", refusing), "g_gone": ("globex", gone),
                 "none": (None, refusing)}
        subs = {role: subscribe(admin, receiver.url, description=role, event_types=["order.*"],
                                **({"tenant_id": tenant} if tenant else {}),
                                **({"enabled": False} if role == "a_off" else {}))
                for role, (tenant, receiver) in where.items()}
        assert admin.delete(f"/v1/subscriptions/{subs.pop('a_gone')['id']}").status_code == 204
        roles = {s["id"]: role for role, s in subs.items()}
        events: dict[str, dict] = {}
        for name, tenant, expected in [
            ("acme", "acme", {"a_pending": ("pending", 1), "a_failed": ("failed", 1),
                              "a_off": ("held", 0), "a_ok": ("succeeded", 1)}),
            ("globex", "globex", {"g_failed": ("failed", 1), "g_gone": ("failed", 1)}),
            ("globex2", "globex", {"g_failed": ("failed", 1), "g_gone": ("held", 0)}),
            ("none", None, {"none": ("failed", 1)}),
        ]:
            event = events[name] = publish_for(admin, tenant, len(events))
            poll(lambda e=event, x=expected: {roles[k]: v for k, v in delivery_states(
                admin, e["id"]).items()} == x, 15, message=f"the {name} event's deliveries")
        found = {roles[d["subscription_id"]]: d
                 for name in ("acme", "globex", "none")
                 for d in deliveries_of(admin, events[name]["id"])}
        yield World(server, admin, subs, found, events)


def cells(page: str, table: str, row_id: str) -> dict[str, str]:
    """The cells of the row ``row_id`` of table ``table``, by their class, as text."""
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    match = re.search(rf'<tr data-id="{re.escape(row_id)}">(.*?)</tr>', body, re.S)
    assert match, f"{row_id} not in #{table}"
    text = {m.group(1).split()[0]: html.unescape(re.sub(r"<[^>]+>", "", m.group(2))).strip()
            for m in re.finditer(r'<td class="([^"]+)">(.*?)</td>', match.group(1), re.S)}
    return {name.removeprefix("n-"): value for name, value in text.items()}


def row_ids(page: str, table: str) -> list[str]:
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr data-id="([^"]+)">', body)


def listed_deliveries(page: str) -> set[str]:
    return set(re.findall(r'href="/ui/deliveries/(dlv_\w+)"', page))


def test_the_tenants_page_counts_each_tenants_subscriptions_and_deliveries(world):
    with logged_in(world.server) as client:
        answer = client.get("/ui/tenants")
        assert answer.status_code == 200, answer.text
        page = answer.text
        assert '<a href="/ui/tenants" aria-current="page">Tenants</a>' in page
        assert row_ids(page, "tenants") == ["globex", "acme", "initech"]  # newest first
        counts = {tenant: cells(page, "tenants", tenant) for tenant in ("acme", "globex",
                                                                        "initech")}
        wanted = ("subscriptions", "failing", "disabled", "pending", "failed")
        assert {k: counts["acme"][k] for k in wanted} == dict(zip(wanted, "42111", strict=True))
        assert {k: counts["globex"][k] for k in wanted} == dict(zip(wanted, "21103",
                                                                     strict=True))
        assert {k: counts["initech"][k] for k in wanted} == dict(zip(wanted, "00000",
                                                                      strict=True))
        assert "<script>alert" not in page and str(escape(ACME_NAME)) in page
        assert 'href="/ui/deliveries?tenant_id=globex&amp;status=failed"' in page


def test_the_tenants_page_counts_in_two_queries_whatever_the_number_of_tenants(world):
    counted: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        if "GROUP BY" in statement.upper() and "tenant_id IN" in statement:
            counted.append(statement)

    with logged_in(world.server) as client:
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
        try:
            assert client.get("/ui/tenants").status_code == 200
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    assert len(counted) == 2, counted  # subscriptions, deliveries: for the three tenants


def test_a_tenants_page_shows_its_metadata_subscriptions_and_links(world):
    subs = world.subs
    with logged_in(world.server) as client:
        answer = client.get("/ui/tenants/acme")
        assert answer.status_code == 200, answer.text
        page = answer.text
        assert "<script>alert" not in page and "<b>pro" not in page
        assert str(escape(ACME_NAME)) in page
        shown = html.unescape(re.search(r'<pre[^>]*id="metadata"[^>]*>(.*?)</pre>', page,
                                        re.S).group(1))
        assert shown == ('{\n  "plan": "<b>pro</b>",\n  "regions": [\n    "eu",\n    "us"\n'
                         '  ],\n  "seats": 5\n}')
        # Its live subscriptions only, each with its health as the subscriptions page has it.
        assert set(row_ids(page, "subscriptions")) == {
            subs[r]["id"] for r in ("a_pending", "a_failed", "a_off", "a_ok")}
        health = dict(re.findall(r'<tr data-id="(sub_\w+)">.*?class="status health-(\w+)"',
                                 page, re.S))
        assert health[subs["a_off"]["id"]] == "disabled"
        assert health[subs["a_ok"]["id"]] == "healthy"
        assert health[subs["a_failed"]["id"]] in ("degraded", "failing")
        assert re.search(r'id="tenant-subscriptions">4 \(2 failing, 1 disabled\)<', page)
        assert 'id="deliveries-link" href="/ui/deliveries?tenant_id=acme"' in page
        assert '>1 failed</a>' in page and '>1 pending</a>' in page

        # globex: its own, none of acme's.
        page = client.get("/ui/tenants/globex").text
        assert set(row_ids(page, "subscriptions")) == {subs["g_failed"]["id"],
                                                       subs["g_gone"]["id"]}
        assert re.search(r'id="tenant-subscriptions">2 \(1 failing, 1 disabled\)<', page)
        page = client.get("/ui/tenants/initech").text
        assert "This tenant has no subscriptions." in page


@pytest.mark.parametrize("path", [
    "/ui/tenants/nope", "/ui/tenants/-starts-badly", "/ui/tenants/" + "a" * 65,
    "/ui/tenants/%3Cscript%3E", "/ui/tenants/a%20b",
])
def test_a_tenant_that_does_not_exist_is_a_clear_404(app_server, path):
    with logged_in(app_server) as client:
        answer = client.get(path)
        assert answer.status_code == 404, answer.text
        assert "No tenant is called" in answer.text and "Traceback" not in answer.text
        assert "<script>" not in answer.text


def test_the_tenant_filter_shows_only_that_tenants_rows(world):
    subs, found = world.subs, world.deliveries
    with logged_in(world.server) as client:
        page = client.get("/ui/subscriptions", params={"tenant_id": "globex"}).text
        assert set(row_ids(page, "subscriptions")) == {subs["g_failed"]["id"],
                                                       subs["g_gone"]["id"]}
        assert 'name="tenant_id" value="globex"' in page
        assert re.search(r'id="filtered-tenant">Subscriptions of <a class="tenant" '
                         r'href="/ui/tenants/globex">', page)
        everyone = client.get("/ui/subscriptions").text
        assert len(row_ids(everyone, "subscriptions")) == 7
        row = everyone.split(f'<tr data-id="{subs["a_ok"]["id"]}">')[1].split("</tr>")[0]
        assert 'href="/ui/tenants/acme"' in row

        page = client.get("/ui/deliveries", params={"tenant_id": "globex"}).text
        globex = {d["id"] for e in ("globex", "globex2")
                  for d in deliveries_of(world.admin, world.events[e]["id"])}
        assert len(globex) == 4 and listed_deliveries(page) == globex
        page = client.get("/ui/deliveries", params={"tenant_id": "acme", "status": "failed"}).text
        assert listed_deliveries(page) == {found["a_failed"]["id"]}
        assert 'id="replay-link" href="/ui/replay?status=failed&amp;tenant_id=acme"' in page
        # A tenant with none, or that does not exist: nothing listed.
        assert listed_deliveries(client.get("/ui/deliveries?tenant_id=initech").text) == set()
        assert listed_deliveries(client.get("/ui/deliveries?tenant_id=unknown").text) == set()
        # Each delivery names its tenant; a delivery of no tenant names none.
        page = client.get(f"/ui/deliveries/{found['g_failed']['id']}").text
        assert re.search(r'id="tenant"><a class="tenant" href="/ui/tenants/globex">', page)
        page = client.get(f"/ui/deliveries/{found['none']['id']}").text
        assert 'id="tenant"><span class="muted">none</span>' in page


@pytest.mark.parametrize("value", ["<script>", "a b", "-x", "a" * 65, "acme/1"])
@pytest.mark.parametrize("path", ["/ui/subscriptions", "/ui/deliveries", "/ui/replay"])
def test_a_bad_tenant_filter_is_a_clear_400(app_server, path, value):
    with logged_in(app_server) as client:
        answer = client.get(path, params={"tenant_id": value})
        assert answer.status_code == 400, answer.text
        assert "tenant_id is 1 to 64 letters" in answer.text
        assert "Traceback" not in answer.text and "<script>" not in answer.text


def test_a_bulk_replay_with_a_tenant_filter_replays_only_that_tenants(world):
    admin, found, subs = world.admin, world.deliveries, world.subs
    globex = admin.get("/v1/deliveries", params={"tenant_id": "globex", "status": "failed",
                                                 "limit": 100}).json()["data"]
    assert len(globex) == 3  # g_failed's two, g_gone's one
    with logged_in(world.server) as client:
        page = client.get("/ui/replay", params={"tenant_id": "globex"})
        assert page.status_code == 200, page.text
        assert re.search(r'id="replay-count">This sends <strong>3</strong>', page.text)
        assert re.search(r'id="replay-tenant"><a class="tenant" href="/ui/tenants/globex">',
                         page.text)
        assert '<input type="hidden" name="tenant_id" value="globex">' in page.text
        token = CSRF.search(page.text).group(1)
        answer = client.post("/ui/replay", data={"csrf": token, "tenant_id": "globex"})
        assert answer.status_code == 303, answer.text
        progress = answer.headers["location"]
        poll(lambda: "replay-done" in client.get(progress).text, 15, message="replay done")
        assert "Done: 3 of 3" in client.get(progress).text
        # Its way back to the deliveries keeps the tenant.
        assert "tenant_id=globex" in client.get(progress).text

    def replayed() -> bool:
        for d in globex:
            if d["subscription_id"] == subs["g_gone"]["id"]:  # disabled: held, not sent
                done = admin.get(f"/v1/deliveries/{d['id']}").json()["status"] == "held"
            else:
                tried = attempts_of(admin, d["id"])
                done = len(tried) == 2 and tried[-1]["trigger"] == "replay"
            if not done:
                return False
        return True

    poll(replayed, 15, message="globex's failed deliveries replayed (the disabled one held)")
    # acme's failed delivery, and the one of no tenant, were not part of it.
    for role in ("a_failed", "none"):
        assert [a["trigger"] for a in attempts_of(admin, found[role]["id"])] == ["scheduled"]
        assert admin.get(f"/v1/deliveries/{found[role]['id']}").json()["status"] == "failed"


def test_a_tenant_name_is_escaped_wherever_it_is_shown(world):
    found, subs = world.deliveries, world.subs
    escaped = str(escape(ACME_NAME))
    with logged_in(world.server) as client:
        for path in ("/ui", "/ui/tenants", "/ui/tenants/acme", "/ui/subscriptions",
                     "/ui/subscriptions?tenant_id=acme", f"/ui/subscriptions/{subs['a_ok']['id']}",
                     "/ui/deliveries", "/ui/deliveries?tenant_id=acme",
                     f"/ui/deliveries/{found['a_failed']['id']}",
                     f"/ui/events/{world.events['acme']['id']}", "/ui/replay?tenant_id=acme"):
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text)
            assert "<script>alert" not in answer.text, path
            assert escaped in answer.text, path
            if path != "/ui/tenants/acme":  # linked to its page, from anywhere else
                assert 'href="/ui/tenants/acme"' in answer.text, path


def test_the_tenants_page_is_paged_newest_first(app_server, admin):
    made = [f"t{n:02}" for n in range(52)]
    for tenant_id in made:
        put_tenant(admin, tenant_id)
    with logged_in(app_server) as client:
        first = client.get("/ui/tenants").text
        assert row_ids(first, "tenants") == made[::-1][:50]
        older = re.search(r'<a href="(/ui/tenants\?cursor=[^"]+)">Older', first).group(1)
        second = client.get(html.unescape(older)).text
        assert row_ids(second, "tenants") == ["t01", "t00"] and "Older" not in second
        bad = client.get("/ui/tenants", params={"cursor": "<script>"})
        assert bad.status_code == 400 and "That page link is not valid" in bad.text
