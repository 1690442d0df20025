"""Portal links over HTTP: ``POST /v1/tenants/{id}/portal-links`` and ``/revoke`` (who may,
what they take, what they answer), and the trade of a link's secret for a session at
``POST /portal/session``: the cookie, the refusals, and the session's end when its link
expires, is revoked or its tenant deleted.

The helpers at the top (a link, a session, a page's csrf) serve test_portal_isolation.py too.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from dispatcher.clock import utcnow
from dispatcher.config import Settings
from dispatcher.models import portal_link_table
from dispatcher.store import Store
from dispatcher.store.rows import hash_key

from .conftest import TEST_SETTINGS
from .test_cli import on_store

LINK_URL = re.compile(r"^(?P<origin>https?://[^/#]+)/portal#(?P<token>ptk_[A-Za-z0-9_-]{43})$")
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
COOKIE = "dispatcher_portal"
NOT_PLAIN = ("Input should", "pydantic", "Value error", "Traceback")


# ---- helpers ------------------------------------------------------------------------------

def make_link(admin: httpx.Client, tenant_id: str, **body: Any) -> dict[str, Any]:
    """A portal link for the tenant (201), with its ``token`` (the part after '#') added."""
    made = admin.post(f"/v1/tenants/{tenant_id}/portal-links", json=body)
    assert made.status_code == 201, made.text
    link = made.json()
    found = LINK_URL.match(link["url"])
    assert found is not None, link["url"]
    return link | {"token": found["token"]}


@contextmanager
def opened(base_url: str, token: str) -> Iterator[httpx.Client]:
    """A browser-like client holding the portal session this token opens."""
    with httpx.Client(base_url=base_url, timeout=30, follow_redirects=False) as client:
        answer = client.post("/portal/session", json={"token": token})
        assert answer.status_code == 204, answer.text
        assert COOKIE in client.cookies
        yield client


def csrf_of(page: httpx.Response) -> str:
    assert page.status_code == 200, page.text[:300]
    found = CSRF.search(page.text)
    assert found is not None, page.text[:300]
    return found.group(1)


def assert_gate(page: httpx.Response, *hidden: str) -> None:
    """The 401 gate page, as a page of no session is: no data, none of ``hidden``."""
    what = f"{page.request.method} {page.request.url} -> {page.status_code} {page.text[:300]}"
    assert page.status_code == 401, what
    assert page.headers["content-type"].startswith("text/html"), what
    assert 'id="gate"' in page.text and "has expired or was revoked" in page.text, what
    assert "Log out" not in page.text and 'name="csrf"' not in page.text, what
    for text in hidden:
        assert text not in page.text, (text, what)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    what = f"{response.request.method} {response.request.url} -> {response.status_code} " \
           f"{response.text[:300]}"
    assert response.status_code == status, what
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, what
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], what
    for words in NOT_PLAIN:
        assert words not in response.text, what


def expire_link(database_url: str, token: str) -> None:
    """Move the link's expiry into the past, as time would (a real write, no clock moved)."""
    async def write(store: Store) -> None:
        async with store.writer.begin() as conn:
            done = await conn.execute(
                sa.update(portal_link_table)
                .where(portal_link_table.c.token_hash == hash_key(token))
                .values(expires_at=utcnow() - timedelta(seconds=1)))
            assert done.rowcount == 1

    on_store(database_url, write)


def put_tenant(admin: httpx.Client, tenant_id: str) -> None:
    made = admin.put(f"/v1/tenants/{tenant_id}", json={"name": f"Tenant {tenant_id}"})
    assert made.status_code in (200, 201), made.text


def subscribe(admin: httpx.Client, tenant_id: str, description: str) -> dict[str, Any]:
    made = admin.post("/v1/subscriptions", json={
        "url": f"http://127.0.0.1:9/{description}", "tenant_id": tenant_id,
        "description": description})
    assert made.status_code == 201, made.text
    return dict(made.json())


def near(value: str, expected: datetime, seconds: float = 30) -> bool:
    return abs((datetime.fromisoformat(value) - expected).total_seconds()) < seconds


# ---- making links -------------------------------------------------------------------------

def test_a_link_by_default_works_an_hour_and_may_change_things(serve):
    with serve() as admin:
        put_tenant(admin, "acme")
        made = admin.post("/v1/tenants/acme/portal-links")
        assert made.status_code == 201, made.text
        assert made.headers["content-type"] == "application/json"
        link = made.json()
        assert set(link) == {"url", "expires_at", "read_only"}
        assert link["read_only"] is False
        assert near(link["expires_at"], utcnow() + timedelta(seconds=3600))
        # No DISPATCHER_PUBLIC_URL: http://HOST:PORT of the settings.
        found = LINK_URL.match(link["url"])
        assert found is not None, link["url"]
        assert found["origin"] == Settings(**TEST_SETTINGS).public_origin() == \
            "http://127.0.0.1:8000"
        assert make_link(admin, "acme", **{})["read_only"] is False

        short = make_link(admin, "acme", expires_in_seconds=60, read_only=True)
        assert short["read_only"] is True
        assert near(short["expires_at"], utcnow() + timedelta(seconds=60), 10)
        week = make_link(admin, "acme", expires_in_seconds=604800)
        assert near(week["expires_at"], utcnow() + timedelta(days=7))
        # Every link has a secret of its own.
        tokens = {short["token"], week["token"], LINK_URL.match(link["url"])["token"]}
        assert len(tokens) == 3


@pytest.mark.parametrize(("public_url", "origin"), [
    ("https://hooks.example.com", "https://hooks.example.com"),
    ("https://hooks.example.com/", "https://hooks.example.com"),
    ("http://hooks.example.com:8443", "http://hooks.example.com:8443"),
])
def test_the_public_url_is_the_links_origin(serve, public_url, origin):
    with serve(public_url=public_url) as admin:
        put_tenant(admin, "acme")
        link = make_link(admin, "acme")
        assert LINK_URL.match(link["url"])["origin"] == origin


@pytest.mark.parametrize("bad", [
    "hooks.example.com", "ftp://hooks.example.com", "https://hooks.example.com/portal",
    "https://hooks.example.com?x=1", "https://hooks.example.com#x", "https://", "",
])
def test_an_invalid_public_url_is_refused_by_the_settings(bad):
    with pytest.raises(ValidationError) as refused:
        Settings(**TEST_SETTINGS, public_url=bad)
    [error] = refused.value.errors()
    assert error["loc"] == ("public_url",)
    assert "scheme://host[:port]" in error["msg"] and "https://hooks.example.com" in error["msg"]


BAD_BODIES = [
    ({"expires_in_seconds": 59}, "expires_in_seconds"),
    ({"expires_in_seconds": 604801}, "expires_in_seconds"),
    ({"expires_in_seconds": "x"}, "expires_in_seconds"),
    ({"expires_in_seconds": None}, "expires_in_seconds"),
    ({"expires_in_seconds": 1.5}, "expires_in_seconds"),
    ({"expires_in_seconds": -3600}, "expires_in_seconds"),
    ({"expires_in_seconds": 10**30}, "expires_in_seconds"),
    ({"expires_in_seconds": "120"}, "expires_in_seconds"),
    ({"expires_in_seconds": True}, "expires_in_seconds"),
    ({"read_only": "yes"}, "read_only"),
    ({"read_only": 1}, "read_only"),
    ({"read_only": None}, "read_only"),
    ({"read_only": "false"}, "read_only"),
    ({"tenant_id": "other"}, "tenant_id"),
    ({"expires_in_seconds": 120, "url": "https://evil.example"}, "url"),
    ([], "body"),
    ("x", "body"),
    (3600, "body"),
]


def test_bad_input_is_an_error_envelope_never_a_link(serve):
    with serve() as admin:
        put_tenant(admin, "acme")
        for body, field in BAD_BODIES:
            answer = admin.post("/v1/tenants/acme/portal-links", json=body)
            assert_error(answer, 422, "validation_error")
            assert field in answer.json()["error"]["message"], (body, answer.text)
        for raw in (b"{", b"not json", b"[" * 5000):
            answer = admin.post("/v1/tenants/acme/portal-links", content=raw,
                                headers={"content-type": "application/json"})
            assert_error(answer, 400, "invalid_json")

        assert_error(admin.post("/v1/tenants/nobody/portal-links", json={}), 404,
                     "tenant_not_found")
        for malformed in ("-starts-with-dash", "x" * 65, "sp%20ace", "%C3%A9t%C3%A9"):
            assert_error(admin.post(f"/v1/tenants/{malformed}/portal-links", json={}), 404,
                         "tenant_not_found")
            assert_error(admin.post(f"/v1/tenants/{malformed}/portal-links/revoke"), 404,
                         "tenant_not_found")
        assert_error(admin.post("/v1/tenants/nobody/portal-links/revoke"), 404,
                     "tenant_not_found")

        put_tenant(admin, "gone")
        assert admin.delete("/v1/tenants/gone").status_code == 204
        assert_error(admin.post("/v1/tenants/gone/portal-links", json={}), 404,
                     "tenant_not_found")
        assert_error(admin.post("/v1/tenants/gone/portal-links/revoke"), 404,
                     "tenant_not_found")


def test_only_admin_keys_make_or_revoke_links(serve):
    with serve() as admin:
        put_tenant(admin, "acme")
        keys = {}
        for name, body in (("publisher", {"role": "publisher"}),
                           ("subscriber", {"role": "subscriber"}),
                           ("scoped", {"role": "subscriber", "tenant_id": "acme"})):
            made = admin.post("/v1/api-keys", json={"name": name} | body)
            assert made.status_code == 201, made.text
            keys[name] = made.json()["key"]
        link = make_link(admin, "acme")
        for key in keys.values():
            with httpx.Client(base_url=admin.base_url, timeout=30,
                              headers={"authorization": f"Bearer {key}"}) as client:
                assert_error(client.post("/v1/tenants/acme/portal-links", json={}), 403,
                             "forbidden")
                assert_error(client.post("/v1/tenants/acme/portal-links/revoke"), 403,
                             "forbidden")
        with httpx.Client(base_url=admin.base_url, timeout=30) as nobody:
            assert_error(nobody.post("/v1/tenants/acme/portal-links", json={}), 401,
                         "unauthorized")
            assert nobody.post("/v1/tenants/acme/portal-links/revoke").status_code == 401
        # The refused revokes revoked nothing.
        with opened(str(admin.base_url), link["token"]) as portal:
            assert portal.get("/portal").status_code == 200


def test_a_portal_turned_off_makes_no_links(serve):
    with serve(portal_enabled=False) as admin:
        put_tenant(admin, "acme")
        assert_error(admin.post("/v1/tenants/acme/portal-links", json={}), 409,
                     "portal_disabled")
        assert_error(admin.post("/v1/tenants/acme/portal-links", json={"read_only": True}),
                     409, "portal_disabled")
        assert "DISPATCHER_PORTAL_ENABLED" in admin.post(
            "/v1/tenants/acme/portal-links").json()["error"]["message"]
        # Nor does it serve the portal.
        assert admin.get("/portal").status_code == 404
        assert admin.post("/portal/session", json={"token": "ptk_x"}).status_code == 404


# ---- the session --------------------------------------------------------------------------

def test_a_good_token_opens_a_session_cookie_for_the_portal_only(serve, caplog):
    caplog.set_level(logging.INFO, logger="dispatcher.portal")
    with serve() as admin:
        put_tenant(admin, "acme")
        sub = subscribe(admin, "acme", "acme-billing")
        link = make_link(admin, "acme", expires_in_seconds=60)
        with httpx.Client(base_url=admin.base_url, timeout=30,
                          follow_redirects=False) as client:
            answer = client.post("/portal/session", json={"token": link["token"]},
                                 headers={"origin": str(admin.base_url).rstrip("/")})
            assert answer.status_code == 204, answer.text
            assert answer.content == b""
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["referrer-policy"] == "no-referrer"
            [cookie] = answer.headers.get_list("set-cookie")
            parts = [p.strip() for p in cookie.split(";")]
            name, _, value = parts[0].partition("=")
            attributes = {p.partition("=")[0].lower(): p.partition("=")[2] for p in parts[1:]}
            assert name == COOKIE
            assert "httponly" in attributes and attributes["samesite"].lower() == "strict"
            assert attributes["path"] == "/portal"
            assert 0 < int(attributes["max-age"]) <= 60
            assert "secure" not in attributes and "domain" not in attributes  # plain http here
            assert link["token"] not in cookie and link["token"][4:] not in cookie
            assert value.startswith("ptl_")

            page = client.get("/portal")
            assert page.status_code == 200, page.text
            assert sub["id"] in page.text and "acme-billing" in page.text
            # The cookie is the portal's: the dashboard does not take it.
            assert client.get("/ui").status_code in (303, 307)

    lines = [r for r in caplog.records if r.name == "dispatcher.portal"]
    assert any("session opened" in r.getMessage() and r.tenant_id == "acme"
               and r.portal_link_id == value.split(".")[0] for r in lines), lines
    for record in caplog.records:
        assert link["token"] not in record.getMessage()
        assert link["token"] not in str(record.__dict__)


def test_bad_expired_or_revoked_tokens_open_nothing(serve, database_url):
    with serve() as admin:
        put_tenant(admin, "acme")
        put_tenant(admin, "gone")
        expired = make_link(admin, "acme", expires_in_seconds=60)
        expire_link(database_url, expired["token"])
        revoked = make_link(admin, "acme")
        assert admin.post("/v1/tenants/acme/portal-links/revoke").status_code == 204
        of_deleted = make_link(admin, "gone")
        assert admin.delete("/v1/tenants/gone").status_code == 204
        live = make_link(admin, "acme")
        with httpx.Client(base_url=admin.base_url, timeout=30,
                          follow_redirects=False) as client:
            for token in ("ptk_" + secrets.token_urlsafe(32), expired["token"], revoked["token"],
                          of_deleted["token"], live["token"][:-1], live["token"] + "x",
                          live["token"][4:], hash_key(live["token"]), "x"):
                answer = client.post("/portal/session", json={"token": token})
                assert_error(answer, 401, "portal_link_invalid")
                assert "set-cookie" not in answer.headers
                assert "expired or was revoked" in answer.json()["error"]["message"]
            for body in ({"token": ""}, {"token": None}, {"token": 5}, {"token": ["ptk_x"]},
                         {"token": "ptk_" + "x" * 300}, {}, {"secret": live["token"]}, [],
                         "ptk_x", None):
                answer = client.post("/portal/session", json=body)
                assert_error(answer, 400, "validation_error")
            for raw in (b"", b"token=ptk_x", b"\xff\xfe", live["token"].encode()):
                answer = client.post("/portal/session", content=raw,
                                     headers={"content-type": "application/json"})
                assert_error(answer, 400, "validation_error")
            answer = client.post("/portal/session", content=b"[" * 5000,
                                 headers={"content-type": "application/json"})
            assert_error(answer, 400, "invalid_json")
            assert COOKIE not in client.cookies
            # From another site's page: refused before the token is looked at.
            for origin in ("https://evil.example", "null",
                           str(admin.base_url).replace("127.0.0.1", "localhost")):
                answer = client.post("/portal/session", json={"token": live["token"]},
                                     headers={"origin": origin})
                assert_error(answer, 403, "forbidden")
                assert "set-cookie" not in answer.headers
            # The refusals left the good one working.
            assert client.post("/portal/session",
                               json={"token": live["token"]}).status_code == 204


def test_revoking_ends_every_earlier_link_and_session_but_not_later_ones(serve):
    with serve() as admin:
        put_tenant(admin, "acme")
        put_tenant(admin, "other")
        sub = subscribe(admin, "acme", "acme-orders")
        first, second = make_link(admin, "acme"), make_link(admin, "acme", read_only=True)
        others = make_link(admin, "other")
        base = str(admin.base_url)
        with opened(base, first["token"]) as one, opened(base, second["token"]) as two, \
                opened(base, others["token"]) as theirs:
            for client in (one, two):
                assert client.get("/portal").status_code == 200
            revoked = admin.post("/v1/tenants/acme/portal-links/revoke")
            assert revoked.status_code == 204 and revoked.content == b""
            for client in (one, two):
                for path in ("/portal", f"/portal/endpoints/{sub['id']}", "/portal/deliveries"):
                    assert_gate(client.get(path), sub["id"], "acme-orders")
            for link in (first, second):
                assert_error(one.post("/portal/session", json={"token": link["token"]}), 401,
                             "portal_link_invalid")
            # Another tenant's links are its own.
            assert theirs.get("/portal").status_code == 200

            after = make_link(admin, "acme")
            with opened(base, after["token"]) as three:
                page = three.get("/portal")
                assert page.status_code == 200 and "acme-orders" in page.text
                # Revoking again: the same 204, and the new one ends too.
                assert admin.post("/v1/tenants/acme/portal-links/revoke").status_code == 204
                assert_gate(three.get("/portal"), "acme-orders")


def test_an_expired_link_ends_its_session_at_the_next_page(serve, database_url):
    with serve() as admin:
        put_tenant(admin, "acme")
        sub = subscribe(admin, "acme", "acme-expiring")
        link = make_link(admin, "acme", expires_in_seconds=60)
        with opened(str(admin.base_url), link["token"]) as client:
            page = client.get(f"/portal/endpoints/{sub['id']}")
            assert page.status_code == 200 and "acme-expiring" in page.text
            csrf = csrf_of(page)
            expire_link(database_url, link["token"])
            for path in ("/portal", f"/portal/endpoints/{sub['id']}", "/portal/deliveries",
                         f"/portal/endpoints/{sub['id']}/edit"):
                assert_gate(client.get(path), sub["id"], "acme-expiring", sub["url"])
            changed = client.post(f"/portal/endpoints/{sub['id']}/enabled",
                                  data={"csrf": csrf, "enabled": "false"})
            assert_gate(changed, sub["id"], "acme-expiring")
        assert admin.get(f"/v1/subscriptions/{sub['id']}").json()["enabled"] is True

    async def look(store: Store) -> Any:
        return await store.portal_link(token=link["token"])

    assert on_store(database_url, look) is None


def test_the_store_knows_only_live_links(database_url):
    async def work(store: Store) -> None:
        await store.put_tenant("acme", None, {})
        link, token = await store.create_portal_link("acme", 60, True)
        assert token.startswith("ptk_") and link.id.startswith("ptl_")
        assert link.token_hash == hash_key(token) and token not in str(link)
        assert await store.portal_link(token=token) == link
        assert await store.portal_link(link_id=link.id) == link
        assert await store.portal_link(token=token + "x") is None
        assert await store.revoke_portal_links("acme") == 1
        assert await store.portal_link(link_id=link.id) is None
        assert await store.revoke_portal_links("acme") == 0
        later, later_token = await store.create_portal_link("acme", 3600, False)
        assert (await store.portal_link(token=later_token)) == later
        await store.delete_tenant("acme")
        assert await store.portal_link(link_id=later.id) is None
        await store.put_tenant("acme", None, {})  # made again: the old link stays dead
        assert await store.portal_link(link_id=later.id) is None
        assert await store.portal_link(token=later_token) is None

    on_store(database_url, work)


def test_prune_deletes_links_that_ended_before_its_cutoff(database_url):
    async def work(store: Store) -> dict[str, Any]:
        await store.put_tenant("acme", None, {})
        made = {name: (await store.create_portal_link("acme", 3600, False))[0]
                for name in ("live", "expired long ago", "expired lately",
                             "revoked long ago", "revoked lately")}
        now, p = utcnow(), portal_link_table
        moved = {"expired long ago": {"expires_at": now - timedelta(days=40)},
                 "expired lately": {"expires_at": now - timedelta(days=1)},
                 "revoked long ago": {"revoked_at": now - timedelta(days=40)},
                 "revoked lately": {"revoked_at": now - timedelta(days=1)}}
        async with store.writer.begin() as conn:
            for name, values in moved.items():
                await conn.execute(sa.update(p).where(p.c.id == made[name].id).values(values))
        cutoff = now - timedelta(days=30)
        would = await store.count_prunable(cutoff)
        counts = await store.prune(cutoff)
        async with store.engine.connect() as conn:
            left = set((await conn.execute(sa.select(p.c.id))).scalars())
        return {"would": would, "counts": counts,
                "left": {name for name, link in made.items() if link.id in left}}

    found = on_store(database_url, work)
    assert found["would"]["portal_links"] == found["counts"]["portal_links"] == 2
    assert found["left"] == {"live", "expired lately", "revoked lately"}
