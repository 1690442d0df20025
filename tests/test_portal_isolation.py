"""A portal session sees its own tenant only, changes nothing when read-only, and nothing at
all once its link has ended: every portal route, over HTTP.

One server and one seeded world for the module: tenants A and B each with two endpoints (one
answering 200, one 500), deliveries of their own events and of a broadcast (succeeded and
failed, with attempts), and a tenant-less subscription with deliveries of its own. B's and the
tenant-less ones' ids, URLs, descriptions, header values and payloads are distinctive, so a
page that shows any of them is caught.

``test_every_portal_route_with_bs_ids`` takes the routes from ``create_app(...).routes``, so
a new portal route fails it until its row in ``EXPECTED`` says what A's session gets there.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from dispatcher import ids
from dispatcher.api import create_app
from dispatcher.config import Settings

from .conftest import ADMIN_TOKEN, TEST_SETTINGS
from .databases import Databases, rows
from .harness import AppServer, Receiver, Reply, poll
from .test_portal_links import assert_gate, csrf_of, expire_link, make_link, opened

READ_ONLY = "This portal link is read-only"
FORBIDDEN_FORM = "This form is out of date or came from another site"
DELIVERY_LINK = re.compile(r'href="/portal/deliveries/(dlv_[0-9a-z]+)"')
ENDPOINT_ROW = re.compile(r'<tr data-id="(sub_[0-9a-z]+)">')


@dataclass
class World:
    server: AppServer
    admin: httpx.Client
    database_url: str
    a: str
    b: str
    subs: dict[str, dict[str, Any]]  # "a_ok", "a_bad", "b_ok", "b_bad", "n1" (no tenant)
    events: dict[str, dict[str, Any]]  # "a", "b", "n", "x" (broadcast)
    deliveries: dict[tuple[str, str], dict[str, Any]]  # (sub, event) -> delivery
    attempts: dict[str, list[dict[str, Any]]]  # delivery id -> its attempts
    receiver: Receiver
    others: dict[str, str] = field(default_factory=dict)  # B's and no tenant's text -> lookalike
    a_texts: set[str] = field(default_factory=set)  # what only A's pages show

    def delivery(self, sub: str, event: str) -> str:
        return str(self.deliveries[(sub, event)]["id"])

    def of(self, *subs: str) -> set[str]:
        return {d["id"] for (s, _), d in self.deliveries.items() if s in subs}


def lookalike(value: str) -> str:
    """Text of the same kind as ``value`` that names nothing."""
    prefix, _, rest = value.partition("_")
    if rest and len(rest) == 26:
        return ids.new_id(prefix)
    return "iso-z" + secrets.token_hex(len(value))[: max(len(value) - 5, 1)]


def seed(server: AppServer, admin: httpx.Client, database_url: str,
         receiver: Receiver) -> World:
    """Tenants A and B, two endpoints each (the ".../ok" path answers 200, ".../bad" 500),
    one tenant-less endpoint; an event for each tenant, one for none, one broadcast; every
    delivery settled."""
    tag = secrets.token_hex(3)
    a, b = f"pi-a-{tag}", f"pi-b-{tag}"
    for tenant_id in (a, b):
        made = admin.put(f"/v1/tenants/{tenant_id}", json={"name": f"Tenant {tenant_id}"})
        assert made.status_code == 201, made.text
    base = receiver.url.rsplit("/", 1)[0]
    subs: dict[str, dict[str, Any]] = {}
    for name, tenant_id in (("a_ok", a), ("a_bad", a), ("b_ok", b), ("b_bad", b),
                            ("n1", None)):
        answer = "bad" if name.endswith("bad") else "ok"
        made = admin.post("/v1/subscriptions", json={
            "url": f"{base}/{name}-{tag}/{answer}", "event_types": ["pi.*"],
            "description": f"{name}-desc-{tag}", "headers": {"X-Mark": f"{name}-hdr-{tag}"},
            **({"tenant_id": tenant_id} if tenant_id else {})})
        assert made.status_code == 201, made.text
        subs[name] = made.json()
    events = {}
    for name, body, count in (("a", {"tenant_id": a}, 2), ("b", {"tenant_id": b}, 2),
                              ("n", {}, 1), ("x", {"broadcast": True}, 5)):
        accepted = admin.post("/v1/events", json={
            "type": f"pi.{name}", "data": {"value": f"{name}-data-{tag}"}, **body})
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["deliveries"] == count, (name, accepted.text)
        events[name] = accepted.json()

    def settled() -> list[dict[str, Any]] | None:
        found = admin.get("/v1/deliveries", params={"limit": 500}).json()["data"]
        done = len(found) == 10 and all(r["status"] in ("succeeded", "failed") for r in found)
        return found if done else None

    by_sub = {s["id"]: n for n, s in subs.items()}
    by_event = {e["id"]: n for n, e in events.items()}
    deliveries = {(by_sub[r["subscription_id"]], by_event[r["event_id"]]): r
                  for r in poll(settled, timeout=30, message="the world's deliveries settled")}
    assert {k: d["status"] for k, d in deliveries.items() if k[0] in ("a_bad", "b_bad")} == {
        ("a_bad", "a"): "failed", ("a_bad", "x"): "failed",
        ("b_bad", "b"): "failed", ("b_bad", "x"): "failed"}
    attempts = {}
    for row in deliveries.values():
        got = admin.get(f"/v1/deliveries/{row['id']}/attempts")
        assert got.status_code == 200 and got.json()["data"], got.text
        attempts[row["id"]] = got.json()["data"]
    world = World(server, admin, database_url, a, b, subs, events, deliveries, attempts,
                  receiver)
    others = {b, f"Tenant {b}", events["b"]["id"], f"b-data-{tag}", events["n"]["id"],
              f"n-data-{tag}"}
    for name in ("b_ok", "b_bad", "n1"):
        sub = subs[name]
        others |= {sub["id"], sub["secret"], sub["url"], sub["description"],
                   sub["headers"]["X-Mark"], f"{name}-{tag}"}
    for (sub_name, _), row in deliveries.items():
        if sub_name in ("b_ok", "b_bad", "n1"):
            others |= {row["id"]} | {att["id"] for att in attempts[row["id"]]}
    world.others = {text: lookalike(text) for text in others}
    world.a_texts = {f"a-data-{tag}"} | {
        subs[n][k] for n in ("a_ok", "a_bad") for k in ("id", "url", "description")} | {
        subs[n]["headers"]["X-Mark"] for n in ("a_ok", "a_bad")} | world.of("a_ok", "a_bad")
    return world


def answering(number: int, request: Any) -> Reply:
    return Reply(500, b"down") if request.path.endswith("/bad") else Reply(200, b"ok")


@pytest.fixture(scope="module")
def world(databases: Databases) -> Iterator[World]:
    url = databases.new()
    settings = Settings(**{**TEST_SETTINGS, "database_url": url})
    with (
        Receiver(answering) as receiver, AppServer(settings) as server,
        httpx.Client(base_url=server.url, timeout=30,
                     headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as admin,
    ):
        yield seed(server, admin, url, receiver)


@pytest.fixture
def fresh(serve, database_url) -> Iterator[World]:
    """A world of the test's own, for tests that end sessions or delete a tenant."""
    with Receiver(answering) as receiver, serve() as admin:
        yield seed(None, admin, database_url, receiver)  # type: ignore[arg-type]


def portal_routes() -> list[tuple[str, str]]:
    """Every route of the app under /portal, as (method, path); a mount as GET path/{path}."""
    app = create_app(Settings(**TEST_SETTINGS, database_url="sqlite+aiosqlite:///unused.db"),
                     workers=False)
    found: list[tuple[str, str]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # an included router (FastAPI >= 0.16x)
                walk(route.original_router.routes, prefix + route.include_context.prefix)
                continue
            path = prefix + route.path
            if not (path == "/portal" or path.startswith("/portal/")):
                continue
            methods = getattr(route, "methods", None)
            if methods is None:  # a mount: everything below it
                found.append(("GET", path + "/{path}"))
            else:
                found.extend((m, path) for m in methods if m != "HEAD")

    walk(app.routes, "")
    return sorted(found)


# ---- the matrix -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call of a route by A's session (read-write, its csrf sent with every form):
    ``query`` and ``form`` fill ``{name}`` from B's ids; the answer is ``status``. 200 on a
    list: A's rows only (``rows``: which). ``fresh``: on a session of its own (log out)."""

    status: int
    query: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None
    rows: str | None = None
    fresh: bool = False


NO_SUCH = Call(404)
NO_SUCH_FORM = Call(404, form={})
A_ENDPOINTS, A_DELIVERIES, A_FAILED, A_SUCCEEDED, A_SOME, NONE = (
    "endpoints", "deliveries", "failed", "succeeded", "some", "none")

# What A's session gets from every portal route, called with B's (or no tenant's) ids.
EXPECTED: dict[tuple[str, str], list[Call]] = {
    ("GET", "/portal"): [Call(200, rows=A_ENDPOINTS)],
    ("GET", "/portal/deliveries"): [
        Call(200, rows=A_DELIVERIES),
        # Another tenant's endpoint as a filter is not found, as its own page is.
        Call(404, query={"subscription_id": "{sub_id}"}),
        Call(200, query={"status": "failed"}, rows=A_FAILED),
        Call(200, query={"status": "succeeded"}, rows=A_SUCCEEDED),
        Call(404, query={"status": "failed", "subscription_id": "{sub_id}"}),
        Call(200, query={"event_type": "pi.b"}, rows=NONE),
        Call(200, query={"event_type": "pi.n"}, rows=NONE),
        Call(200, query={"cursor": "{delivery_id}"}, rows=A_SOME),
        Call(200, query={"tenant_id": "{B}"}, rows=A_DELIVERIES),
    ],
    ("GET", "/portal/deliveries/{delivery_id}"): [NO_SUCH],
    ("POST", "/portal/deliveries/{delivery_id}/retry"): [NO_SUCH_FORM],
    ("GET", "/portal/endpoints/new"): [Call(200)],
    # The form cannot name a tenant: an empty URL is refused before anything is made.
    ("POST", "/portal/endpoints"): [Call(400, form={"url": "", "tenant_id": "{B}"})],
    ("GET", "/portal/endpoints/{sub_id}"): [NO_SUCH],
    ("POST", "/portal/endpoints/{sub_id}"): [
        Call(404, form={"url": "{A_URL}", "description": "pwned"}),
        Call(404, form={"url": "{A_URL}", "tenant_id": "{A}"})],
    ("GET", "/portal/endpoints/{sub_id}/edit"): [NO_SUCH],
    ("POST", "/portal/endpoints/{sub_id}/enabled"): [Call(404, form={"enabled": "false"})],
    ("GET", "/portal/endpoints/{sub_id}/delete"): [NO_SUCH],
    ("POST", "/portal/endpoints/{sub_id}/delete"): [NO_SUCH_FORM],
    ("POST", "/portal/endpoints/{sub_id}/rotate"): [Call(404, form={"grace_hours": "0"})],
    ("POST", "/portal/endpoints/{sub_id}/test"): [
        Call(404, form={"type": "dispatcher.test", "data": "{}"})],
    ("POST", "/portal/endpoints/{sub_id}/recover"): [
        Call(404, form={"since": "2020-01-01 00:00"})],
    ("POST", "/portal/endpoints/{sub_id}/recover/confirm"): [
        Call(404, form={"since": "2020-01-01 00:00", "until": "2099-01-01 00:00"})],
    ("POST", "/portal/logout"): [Call(303, form={}, fresh=True)],
    ("POST", "/portal/session"): [Call(401, form=None)],  # B's? no: any unknown token
    ("GET", "/portal/ended"): [Call(200)],
    ("GET", "/portal/theme.css"): [Call(200)],
    ("GET", "/portal/static/{path}"): [Call(200)],
}
# Beside B's ids, the path values of the routes that take no id.
STATIC_PATH = {"path": "portal.js"}


def fills(world: World) -> list[dict[str, str]]:
    """B's ids by parameter name, three sets: B's healthy endpoint with a failed delivery of
    B's, B's failing endpoint with B's delivery of the broadcast, the tenant-less endpoint
    with its own delivery."""
    common = {"A": world.a, "B": world.b, "A_URL": world.subs["a_ok"]["url"]} | STATIC_PATH
    return [
        common | {"sub_id": world.subs["b_ok"]["id"],
                  "delivery_id": world.delivery("b_bad", "b")},
        common | {"sub_id": world.subs["b_bad"]["id"],
                  "delivery_id": world.delivery("b_ok", "x")},
        common | {"sub_id": world.subs["n1"]["id"], "delivery_id": world.delivery("n1", "n")},
    ]


def fill(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, text in names.items():
            value = value.replace("{" + name + "}", text)
        return value
    if isinstance(value, dict):
        return {k: fill(v, names) for k, v in value.items()}
    return value


def longest_first(table: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(table.items(), key=lambda item: -len(item[0]))


def swap(value: Any, table: dict[str, str]) -> Any:
    text = json.dumps(value)
    for old, new in longest_first(table):
        text = text.replace(old, new)
    return json.loads(text)


def listed(world: World, kind: str) -> set[str]:
    return {
        A_ENDPOINTS: {world.subs["a_ok"]["id"], world.subs["a_bad"]["id"]},
        A_DELIVERIES: world.of("a_ok", "a_bad"),
        A_FAILED: world.of("a_bad"),
        A_SUCCEEDED: world.of("a_ok"),
        NONE: set(),
    }[kind]


def send(client: httpx.Client, method: str, path: str, query: dict[str, str],
         form: dict[str, str] | None, csrf: str) -> httpx.Response:
    if path == "/portal/session":
        return client.post(path, json={"token": "ptk_" + secrets.token_urlsafe(32)})
    if method == "GET":
        return client.get(path, params=query)
    return client.post(path, params=query, data={"csrf": csrf} | (form or {}))


def check_call(world: World, client: httpx.Client, csrf: str, method: str, template: str,
               call: Call, names: dict[str, str]) -> None:
    path, query, form = fill(template, names), fill(call.query, names), fill(call.form, names)
    response = send(client, method, path, query, form, csrf)
    what = f"{method} {path} {query} {form} -> {response.status_code} {response.text[:300]}"
    assert response.status_code == call.status, what
    assert "Traceback" not in response.text, what
    sent = json.dumps([path, query, form])
    echoed = {text for text in world.others if text in response.text}
    assert echoed <= {t for t in echoed if t in sent}, f"B's data {echoed} in {what}"
    if call.rows is not None:
        assert not echoed, what
        shown = (set(ENDPOINT_ROW.findall(response.text)) if call.rows == A_ENDPOINTS
                 else set(DELIVERY_LINK.findall(response.text)))
        if call.rows == A_SOME:  # a page from a cursor: some of A's, older than it
            assert shown <= listed(world, A_DELIVERIES), what
        else:
            assert shown == listed(world, call.rows), what
        return
    if call.status != 404:
        return
    assert 'id="portal-error"' in response.text and "Nothing is called" in response.text, what
    # What it says of B's id is what it says of an id that names nothing: no oracle.
    table = {text: look for text, look in world.others.items() if text in sent}
    assert table, what
    twin = send(client, method, swap(path, table), swap(query, table), swap(form, table), csrf)
    back = twin.text
    for text, look in longest_first(table):
        back = back.replace(look, text)
    assert (twin.status_code, back) == (response.status_code, response.text), (
        f"{what} but for an unknown id: {twin.status_code} {twin.text[:300]}")


def everything(world: World) -> list[list[Any]]:
    """Every row a portal change could touch, to compare before and after."""
    return [[tuple(r) for r in rows(world.database_url, f"SELECT {columns} FROM {table} "
                                                        "ORDER BY id")]
            for table, columns in [
                ("tenant", "id, name, updated_at, deleted_at"),
                ("subscription", "id, url, description, enabled, deleted_at, updated_at, "
                                 "tenant_id"),
                ("delivery", "id, status, attempts, next_attempt_at, updated_at"),
                ("attempt", "id"), ("event", "id")]]


def test_every_portal_route_with_bs_ids(world):
    routes = portal_routes()
    assert set(EXPECTED) == set(routes), (
        "portal routes without a row in EXPECTED (or rows without a route): "
        f"{set(routes) ^ set(EXPECTED)}")
    assert len(routes) >= 20, routes
    before = everything(world)
    requests_before = world.receiver.count()
    link = make_link(world.admin, world.a)
    called: list[tuple[str, str]] = []
    with opened(world.server.url, link["token"]) as client:
        csrf = csrf_of(client.get("/portal"))
        for method, template in routes:
            for names in fills(world) if "{" in template else fills(world)[:1]:
                for call in EXPECTED[(method, template)]:
                    if call.fresh:
                        with opened(world.server.url, link["token"]) as own:
                            check_call(world, own, csrf_of(own.get("/portal")), method,
                                       template, call, names)
                    else:
                        check_call(world, client, csrf, method, template, call, names)
                    called.append((method, template))
        # The session still works after all that (the logout was another's).
        assert client.get("/portal").status_code == 200
    assert set(called) == set(routes)
    # Nothing of B's, nor of A's, changed; no test event went out.
    assert everything(world) == before
    assert world.receiver.count() == requests_before


def test_malformed_ids_name_nothing(world):
    link = make_link(world.admin, world.a)
    with opened(world.server.url, link["token"]) as client:
        csrf = csrf_of(client.get("/portal"))
        for bad in ("nope", "sub_", "dlv_" + "0" * 26, "sub_" + "Z" * 26, "%00", "sub_%2F..",
                    world.subs["a_ok"]["id"].upper()):
            for path in (f"/portal/endpoints/{bad}", f"/portal/endpoints/{bad}/edit",
                         f"/portal/deliveries/{bad}"):
                page = client.get(path)
                assert page.status_code == 404, (path, page.text[:300])
                assert "Traceback" not in page.text
            for path in (f"/portal/endpoints/{bad}/delete", f"/portal/deliveries/{bad}/retry",
                         f"/portal/endpoints/{bad}/rotate"):
                page = client.post(path, data={"csrf": csrf})
                assert page.status_code == 404, (path, page.text[:300])


def test_the_lists_show_only_as_rows(world):
    link = make_link(world.admin, world.a)  # read-write, for the new-endpoint form (no post)
    with opened(world.server.url, link["token"]) as client:
        pages = [client.get("/portal"), client.get("/portal/deliveries"),
                 client.get("/portal/endpoints/new")]
        for sub in ("a_ok", "a_bad"):
            pages.append(client.get(f"/portal/endpoints/{world.subs[sub]['id']}"))
        for delivery in world.of("a_ok", "a_bad"):
            pages.append(client.get(f"/portal/deliveries/{delivery}"))
        for page in pages:
            assert page.status_code == 200, (page.request.url, page.text[:300])
            shown = {text for text in world.others if text in page.text}
            assert not shown, (page.request.url, shown)
        text = "".join(p.text for p in pages)
        # And they are not empty: A's endpoints, deliveries, attempts and payloads are there.
        for mine in world.a_texts:
            assert mine in text, mine
        assert set(DELIVERY_LINK.findall(pages[1].text)) == world.of("a_ok", "a_bad")
        # The broadcast's delivery to A is A's, with its payload.
        page = client.get(f"/portal/deliveries/{world.delivery('a_ok', 'x')}")
        assert page.status_code == 200 and "x-data-" in page.text
        # The offered event types are A's deliveries' types only.
        assert "pi.b" not in pages[2].text and "pi.n" not in pages[2].text


def add_endpoint(client: httpx.Client, csrf: str, **form: str) -> str:
    """An endpoint added through the portal's form; its id, from the page that answers."""
    made = client.post("/portal/endpoints", data={"csrf": csrf, **form})
    assert made.status_code == 200, made.text[:300]
    [sub_id] = re.findall(r'<code class="id">(sub_[0-9a-z]+)</code>', made.text)
    return sub_id


def test_a_new_endpoint_is_the_sessions_tenants_whatever_the_form_says(world):
    link = make_link(world.admin, world.a)
    with opened(world.server.url, link["token"]) as client:
        csrf = csrf_of(client.get("/portal/endpoints/new"))
        sub_id = add_endpoint(client, csrf, url=world.subs["a_ok"]["url"],
                              description="pi-made", tenant_id=world.b, **{"t.pi.b": "on"})
        try:
            got = world.admin.get(f"/v1/subscriptions/{sub_id}").json()
            assert got["tenant_id"] == world.a and got["event_types"] == ["pi.b"]
        finally:
            deleted = client.post(f"/portal/endpoints/{sub_id}/delete", data={"csrf": csrf})
            assert deleted.status_code == 303
        assert world.admin.get(f"/v1/subscriptions/{sub_id}").status_code == 404


def changes(world: World) -> list[tuple[str, dict[str, str]]]:
    """Every POST of a change, on A's own rows, with a form that would otherwise work."""
    sub, failed = world.subs["a_bad"]["id"], world.delivery("a_bad", "a")
    return [
        ("/portal/endpoints", {"url": world.subs["a_ok"]["url"], "description": "pi-ro"}),
        (f"/portal/endpoints/{sub}", {"url": world.subs["a_bad"]["url"],
                                      "description": "pi-changed"}),
        (f"/portal/endpoints/{sub}/enabled", {"enabled": "false"}),
        (f"/portal/endpoints/{sub}/delete", {}),
        (f"/portal/endpoints/{sub}/rotate", {"grace_hours": "0"}),
        (f"/portal/endpoints/{sub}/test", {"type": "dispatcher.test", "data": "{}"}),
        (f"/portal/endpoints/{sub}/recover", {"since": "2020-01-01 00:00"}),
        (f"/portal/endpoints/{sub}/recover/confirm", {"since": "2020-01-01 00:00",
                                                      "until": "2099-01-01 00:00"}),
        (f"/portal/deliveries/{failed}/retry", {}),
    ]


def change_routes() -> set[tuple[str, str]]:
    return {(m, p) for m, p in portal_routes() if m == "POST"} - {
        ("POST", "/portal/session"), ("POST", "/portal/logout")}


def as_template(world: World, path: str) -> str:
    for sub in world.subs.values():
        path = path.replace(sub["id"], "{sub_id}")
    for delivery in world.of(*world.subs):
        path = path.replace(delivery, "{delivery_id}")
    return path


def test_a_read_only_session_changes_nothing(world):
    assert {("POST", as_template(world, p)) for p, _ in changes(world)} == change_routes()
    link = make_link(world.admin, world.a, read_only=True)
    before, sent = everything(world), world.receiver.count()
    with opened(world.server.url, link["token"]) as client:
        page = client.get(f"/portal/endpoints/{world.subs['a_bad']['id']}")
        csrf = csrf_of(page)
        assert 'id="read-only"' in page.text
        for control in ('id="edit"', 'id="disable"', 'id="rotate"', 'id="delete"',
                        'id="send-test"', 'id="recover"'):
            assert control not in page.text, control
        assert 'id="new-endpoint"' not in client.get("/portal").text
        # Nor the pages whose forms would change something.
        sub = world.subs["a_bad"]["id"]
        for path in ("/portal/endpoints/new", f"/portal/endpoints/{sub}/edit",
                     f"/portal/endpoints/{sub}/delete"):
            answer = client.get(path)
            assert answer.status_code == 403 and READ_ONLY in answer.text, path
        assert 'id="retry"' not in client.get(
            f"/portal/deliveries/{world.delivery('a_bad', 'a')}").text
        for path, form in changes(world):
            answer = client.post(path, data={"csrf": csrf} | form)
            assert answer.status_code == 403, (path, answer.text[:300])
            assert READ_ONLY in answer.text and 'id="portal-error"' in answer.text, path
        # A read-only session may still log out.
        assert client.post("/portal/logout", data={"csrf": csrf}).status_code == 303
    assert everything(world) == before and world.receiver.count() == sent


def test_a_change_needs_the_sessions_csrf_token_and_origin(world):
    link = make_link(world.admin, world.a)
    other = make_link(world.admin, world.a)
    before, sent = everything(world), world.receiver.count()
    with opened(world.server.url, link["token"]) as client, \
            opened(world.server.url, other["token"]) as second:
        csrf, others_csrf = csrf_of(client.get("/portal")), csrf_of(second.get("/portal"))
        assert csrf != others_csrf
        for path, form in changes(world):
            for token in (None, "", "0" * 40, others_csrf, csrf[:-1], csrf.upper()):
                fields = form | ({} if token is None else {"csrf": token})
                answer = client.post(path, data=fields)
                assert answer.status_code == 403, (path, token, answer.text[:300])
                assert FORBIDDEN_FORM in answer.text, (path, answer.text[:300])
            answer = client.post(path, data={"csrf": csrf} | form,
                                 headers={"origin": "https://evil.example"})
            assert answer.status_code == 403 and FORBIDDEN_FORM in answer.text, path
    assert everything(world) == before and world.receiver.count() == sent


def test_no_session_gets_the_gate_on_every_route(world):
    before = everything(world)
    hidden = set(world.a_texts) | set(world.others)
    names = fills(world)[0] | {"sub_id": world.subs["a_bad"]["id"],
                               "delivery_id": world.delivery("a_bad", "a")}
    with httpx.Client(base_url=world.server.url, timeout=30, follow_redirects=False) as client:
        for cookie in (None, "garbage", "ptl_x.1.y", "key_01.9999999999.ab"):
            headers = {} if cookie is None else {"cookie": f"dispatcher_portal={cookie}"}
            for method, template in portal_routes():
                if template in ("/portal/session", "/portal/ended", "/portal/theme.css",
                                "/portal/static/{path}"):
                    continue
                path = fill(template, names)
                answer = (client.get(path, headers=headers) if method == "GET"
                          else client.post(path, data={"csrf": "0" * 40}, headers=headers))
                assert_gate(answer, *hidden)
    assert everything(world) == before


def end_by(world: World, how: str, token: str) -> None:
    """End the link of ``token`` (and, revoking or deleting, every other link of A's)."""
    if how == "expired":
        expire_link(world.database_url, token)
    elif how == "revoked":
        assert world.admin.post(f"/v1/tenants/{world.a}/portal-links/revoke").status_code == 204
    elif world.admin.get(f"/v1/tenants/{world.a}").status_code == 200:
        assert world.admin.delete(f"/v1/tenants/{world.a}").status_code == 204


@pytest.mark.parametrize("how", ["expired", "revoked", "deleted"])
def test_an_ended_session_shows_nothing_on_every_route(fresh, how):
    world = fresh
    base = str(world.admin.base_url)
    names = {"sub_id": world.subs["a_bad"]["id"], "delivery_id": world.delivery("a_bad", "a"),
             **STATIC_PATH}
    gets = [fill(t, names) for m, t in portal_routes() if m == "GET" and t not in (
        "/portal/ended", "/portal/theme.css", "/portal/static/{path}")]
    posts = [fill(t, names) for m, t in portal_routes()
             if m == "POST" and t != "/portal/session"]
    assert len(gets) >= 6 and len(posts) >= 10
    links = [make_link(world.admin, world.a, read_only=read_only)
             for read_only in (False, True)]
    with opened(base, links[0]["token"]) as writer, opened(base, links[1]["token"]) as reader:
        sessions = [(writer, csrf_of(writer.get("/portal"))),
                    (reader, csrf_of(reader.get("/portal")))]
        for client, _ in sessions:
            for path in gets:
                # A read-only link's change pages are refused (403) while it is live.
                wanted = 403 if client is reader and re.search(
                    r"/new$|/edit$|/delete$", path) else 200
                assert client.get(path).status_code == wanted, path
        for link in links:
            end_by(world, how, link["token"])
        before = everything(world)
        for client, csrf in sessions:
            for path in gets:
                assert_gate(client.get(path), *world.a_texts)
            for path in posts:
                assert_gate(client.post(path, data={"csrf": csrf, "enabled": "false"}),
                            *world.a_texts)
            assert_gate(client.get("/portal"), *world.a_texts)
        assert everything(world) == before
        for link in links:
            answer = writer.post("/portal/session", json={"token": link["token"]})
            assert answer.status_code == 401, answer.text


def test_a_tenant_made_again_does_not_open_to_old_links(fresh):
    world = fresh
    base = str(world.admin.base_url)
    old = make_link(world.admin, world.a)
    unused = make_link(world.admin, world.a, read_only=True)
    with opened(base, old["token"]) as client:
        assert client.get("/portal").status_code == 200
        assert world.admin.delete(f"/v1/tenants/{world.a}").status_code == 204
        made = world.admin.put(f"/v1/tenants/{world.a}", json={"name": "again"})
        assert made.status_code == 201, made.text
        assert_gate(client.get("/portal"), *world.a_texts)
        for link in (old, unused):
            answer = client.post("/portal/session", json={"token": link["token"]})
            assert answer.status_code == 401, answer.text
        assert_gate(client.get("/portal"), *world.a_texts)
    # A link of the new tenant opens it, and it has nothing of the old one's.
    new = make_link(world.admin, world.a)
    with opened(base, new["token"]) as client:
        page = client.get("/portal")
        assert page.status_code == 200 and "No endpoints yet" in page.text
        for text in world.a_texts:
            assert text not in page.text
        # The old tenant's deliveries stay as history under its id (until pruned), as the
        # API lists them for that id: the portal shows what the API shows, no more.
        listing = client.get("/portal/deliveries")
        api = world.admin.get("/v1/deliveries", params={"tenant_id": world.a, "limit": 500})
        assert listing.status_code == 200 and api.status_code == 200, api.text
        assert set(DELIVERY_LINK.findall(listing.text)) == {d["id"] for d in api.json()["data"]}
        for sub in ("a_ok", "a_bad"):
            assert client.get(f"/portal/endpoints/{world.subs[sub]['id']}").status_code == 404


def test_an_endpoints_delivery_options_are_set_shown_and_cleared_in_the_portal(world):
    link = make_link(world.admin, world.a)
    with opened(world.server.url, link["token"]) as client:
        csrf = csrf_of(client.get("/portal/endpoints/new"))
        sub_id = add_endpoint(client, csrf, url=world.subs["a_ok"]["url"],
                              description="pi-options", retry_schedule="10, 60, 600",
                              timeout_seconds="30")
        try:
            got = world.admin.get(f"/v1/subscriptions/{sub_id}").json()
            assert (got["retry_schedule"], got["timeout_seconds"]) == ([10, 60, 600], 30)
            page = client.get(f"/portal/endpoints/{sub_id}").text
            assert "10 s, 60 s, 600 s" in page and "30 s" in page
            form = client.get(f"/portal/endpoints/{sub_id}/edit").text
            assert 'value="10, 60, 600"' in form and 'value="30"' in form
            refused = client.post(f"/portal/endpoints/{sub_id}", data={
                "csrf": csrf, "url": got["url"], "timeout_seconds": "90"})
            assert refused.status_code == 400 and "timeout_seconds: must be at most 60" \
                in refused.text
            saved = client.post(f"/portal/endpoints/{sub_id}", data={
                "csrf": csrf, "url": got["url"], "retry_schedule": "", "timeout_seconds": "5"})
            assert saved.status_code == 303, saved.text[:300]
            got = world.admin.get(f"/v1/subscriptions/{sub_id}").json()
            assert (got["retry_schedule"], got["timeout_seconds"]) == (None, 5)
        finally:
            client.post(f"/portal/endpoints/{sub_id}/delete", data={"csrf": csrf})
