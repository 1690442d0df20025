"""The schema comes only from Alembic: empty → head on each engine, and no drift."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import httpx
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import SQLModel
from standardwebhooks import Webhook

import dispatcher.models  # noqa: F401  (registers the tables)
from dispatcher import ids, migrate
from dispatcher.clock import utcnow
from dispatcher.config import Settings
from dispatcher.models import UTCDateTime
from dispatcher.signing import generate_secret
from dispatcher.store.rows import encode_payload, hash_key

from .conftest import TEST_SETTINGS
from .databases import rows, scalar
from .harness import AppServer, Receiver, poll

TABLES = {"api_key", "subscription", "event", "delivery", "attempt"}


def _tables(url: str, engine: str) -> set[str]:
    if engine == "sqlite":
        found = rows(url, "SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        found = rows(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r[0] for r in found}


def test_upgrade_from_empty_to_head_and_back(databases, engine):
    url = databases.empty()
    migrate.upgrade(url)
    assert TABLES | {"alembic_version"} <= _tables(url, engine)
    assert scalar(url, "SELECT version_num FROM alembic_version") == migrate.head()
    migrate.downgrade(url, "base")
    assert not TABLES & _tables(url, engine)
    migrate.upgrade(url)
    assert TABLES <= _tables(url, engine)


def test_models_and_migrations_do_not_drift(database_url):
    async def diff() -> list:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"compare_type": True}),
                        SQLModel.metadata,
                    )
                )
        finally:
            await engine.dispose()

    assert asyncio.run(diff()) == []


# --- A database filled at 0004, then upgraded to tenants (0005) -------------------------

# Columns added since 0004 (tenants in 0005, a subscription's filter in 0009, its
# retry schedule and timeout in 0010, its signature scheme in 0011, ordering in 0012): all
# null but NOT_NULL_ADDED (v1, as every subscription was signed; false; 0).
TENANT_COLUMNS = {"api_key": {"tenant_id"}, "subscription": {
                      "tenant_id", "filter", "retry_schedule", "timeout_seconds",
                      "signature_scheme", "ordered", "next_sequence"},
                  "event": {"tenant_id", "broadcast", "trace_context"},
                  "delivery": {"tenant_id", "sequence"}}
NOT_NULL_ADDED = {"broadcast", "signature_scheme", "ordered", "next_sequence"}
DATA_TABLES = ("api_key", "subscription", "event", "delivery", "attempt")


def _insert(url: str, table: str, records: list[dict]) -> None:
    """Plain ``INSERT``s, the times and JSON bound by their column types only."""
    times = {"created_at", "updated_at", "deleted_at", "failing_since", "next_attempt_at",
             "lease_until", "resume_at", "started_at"}

    async def run() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                for record in records:
                    names = list(record)
                    stmt = sa.text(
                        f"INSERT INTO {table} ({', '.join(names)}) "
                        f"VALUES ({', '.join(':' + n for n in names)})"
                    ).bindparams(*(
                        sa.bindparam(n, type_=UTCDateTime()) if n in times
                        else sa.bindparam(n, type_=sa.JSON()) if n in {
                            "event_types", "headers", "secrets"}
                        else sa.bindparam(n, type_=sa.LargeBinary()) if n == "payload"
                        else sa.bindparam(n) for n in names))
                    await conn.execute(stmt, record)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _snapshot(url: str) -> dict[str, list[dict]]:
    return {t: [dict(r._mapping) for r in rows(url, f"SELECT * FROM {t} ORDER BY id")]
            for t in DATA_TABLES}


def _fill_at_0004(url: str, receiver_url: str) -> dict:
    """Keys of each role, subscriptions enabled, disabled and deleted, events with and without
    an idempotency key, a delivery in every status, and attempts: as 0004 stores them."""
    now = utcnow()
    before = now - timedelta(minutes=5)
    plain = {name: f"dk_old_{name}_{secrets.token_hex(8)}"
             for name in ("admin", "pub", "sub", "gone")}
    keys = {name: ids.new_id("key") for name in plain}
    roles = {"admin": "admin", "pub": "publisher", "sub": "subscriber", "gone": "subscriber"}
    _insert(url, "api_key", [
        {"id": keys[n], "role": roles[n], "name": f"old {n}", "key_hash": hash_key(plain[n]),
         "created_at": before, "deleted_at": now if n == "gone" else None} for n in plain])
    secret = {n: generate_secret() for n in ("on", "admin", "off", "gone")}
    subs = {n: ids.new_id("sub") for n in secret}
    sub_rows = {
        "on": {"owner": keys["sub"], "event_types": ["order.*"], "enabled": True},
        "admin": {"owner": keys["admin"], "event_types": ["*"], "enabled": True,
                  "headers": {"x-old": "yes"}, "rate_limit_per_second": 50},
        "off": {"owner": keys["sub"], "event_types": ["*"], "enabled": False,
                "disabled_reason": "manual"},
        "gone": {"owner": keys["sub"], "event_types": ["*"], "enabled": False,
                 "deleted_at": now},
    }
    _insert(url, "subscription", [
        {"id": subs[n], "url": f"{receiver_url}?sub={n}", "headers": {}, "description": n,
         "secrets": [{"secret": secret[n], "expires_at": None}], "disabled_reason": None,
         "rate_limit_per_second": None, "failing_since": None, "created_at": before,
         "updated_at": before, "deleted_at": None, "rate_window": None, "rate_count": 0,
         **sub_rows[n]} for n in subs])
    events = {n: ids.new_id("evt") for n in ("idem", "plain", "admin")}
    types = {"idem": "order.created", "plain": "order.paid", "admin": "user.signed_up"}
    _insert(url, "event", [
        {"id": events[n], "type": types[n], "payload": encode_payload(types[n], before, {"n": n}),
         "publisher": keys["admin" if n == "admin" else "pub"],
         "idempotency_key": "idem-old-1" if n == "idem" else None, "created_at": before}
        for n in events])

    def delivery(event: str, sub: str, status: str, attempts: int, due: object, **more) -> dict:
        return {"id": ids.new_id("dlv"), "event_id": events[event], "event_type": types[event],
                "subscription_id": subs[sub], "status": status, "attempts": attempts,
                "retry_base": 0, "next_trigger": "scheduled", "resume_status": None,
                "resume_at": None, "next_attempt_at": due, "lease_until": None,
                "lease_owner": None, "last_status_code": None, "last_error": None,
                "created_at": before, "updated_at": before, **more}

    dlv = {
        "retrying": delivery("idem", "on", "pending", 1, now - timedelta(seconds=1),
                             last_status_code=500),
        "fresh": delivery("admin", "admin", "pending", 0, now - timedelta(seconds=1)),
        "succeeded": delivery("plain", "admin", "succeeded", 1, None, last_status_code=200),
        "failed": delivery("plain", "on", "failed", 3, None, last_error="connection refused"),
        "held": delivery("idem", "off", "held", 0, None),
        "cancelled": delivery("idem", "gone", "cancelled", 0, None),
    }
    _insert(url, "delivery", list(dlv.values()))

    def attempt(which: str, number: int, code: int | None, outcome: str) -> dict:
        return {"id": ids.new_id("att"), "delivery_id": dlv[which]["id"], "number": number,
                "trigger": "scheduled", "started_at": before, "duration_ms": 12,
                "status_code": code, "response_body": "old" if code else None,
                "error": None if code else "connection refused", "outcome": outcome}

    _insert(url, "attempt", [
        attempt("retrying", 1, 500, "failed"), attempt("succeeded", 1, 200, "succeeded"),
        *(attempt("failed", n, None, "failed") for n in (1, 2, 3))])
    return {"plain": plain, "keys": keys, "subs": subs, "secret": secret, "events": events,
            "deliveries": {n: d["id"] for n, d in dlv.items()}}


def _settings(url: str) -> Settings:
    return Settings(**{**TEST_SETTINGS, "database_url": url})  # type: ignore[arg-type]


def test_a_populated_0004_database_upgrades_to_tenants_and_keeps_working(databases, engine):
    url = databases.empty()
    migrate.upgrade(url, "0004")
    with Receiver() as receiver:
        old = _fill_at_0004(url, receiver.url)
        before = _snapshot(url)
        migrate.upgrade(url)
        assert scalar(url, "SELECT version_num FROM alembic_version") == migrate.head()

        # Every row is still there, with its values; none has a tenant (nor a filter), no
        # event a broadcast.
        after = _snapshot(url)
        for table in DATA_TABLES:
            added = TENANT_COLUMNS.get(table, set())
            assert [{c: v for c, v in r.items() if c not in added} for r in after[table]] \
                == before[table], table
            for row in after[table]:
                assert set(row) - set(before[table][0]) == added, table
                assert all(row[c] is None for c in added - NOT_NULL_ADDED), row
                assert row.get("signature_scheme", "v1") == "v1", row
                assert not row.get("ordered") and not row.get("next_sequence"), row
        assert [bool(r["broadcast"]) for r in after["event"]] == [False] * 3
        assert scalar(url, "SELECT count(*) FROM tenant") == 0

        plain, subs, events = old["plain"], old["subs"], old["events"]
        with AppServer(_settings(url)) as server:
            def client(name: str) -> httpx.Client:
                return httpx.Client(base_url=server.url, timeout=30,
                                    headers={"authorization": f"Bearer {plain[name]}"})

            with client("admin") as admin, client("pub") as pub, client("sub") as sub, \
                    client("gone") as gone:
                # The old keys authenticate, each with its role.
                listed = admin.get("/v1/api-keys", params={"limit": 100})
                assert listed.status_code == 200, listed.text
                shown = {k["id"]: k for k in listed.json()["data"]}
                for name in ("admin", "pub", "sub"):
                    assert shown[old["keys"][name]]["tenant_id"] is None
                assert old["keys"]["gone"] not in shown
                assert pub.get("/v1/api-keys").status_code == 403
                assert sub.post("/v1/events", json={"type": "order.x"}).status_code == 403
                assert gone.get("/v1/subscriptions").status_code == 401
                mine = sub.get("/v1/subscriptions").json()["data"]
                assert {s["id"] for s in mine} == {subs["on"], subs["off"]}
                assert {s["tenant_id"] for s in mine} == {None}
                event = admin.get(f"/v1/events/{events['idem']}").json()
                assert (event["tenant_id"], event["broadcast"]) == (None, False)

                # The pending deliveries left by 0004 are sent, signed with the old secrets.
                def arrived(sub_name: str, event_id: str) -> list:
                    return [r for r in list(receiver.requests)
                            if r.path.endswith(f"sub={sub_name}")
                            and r.headers["webhook-id"] == event_id]

                for sub_name, event_name in (("on", "idem"), ("admin", "admin")):
                    [got] = poll(lambda s=sub_name, e=event_name: arrived(s, events[e]), 20,
                                 message=f"the old pending delivery to {sub_name}")
                    Webhook(old["secret"][sub_name]).verify(got.body, got.headers)
                    if sub_name == "admin":
                        assert got.headers["x-old"] == "yes"

                def status(which: str) -> str:
                    return admin.get(f"/v1/deliveries/{old['deliveries'][which]}").json()[
                        "status"]

                poll(lambda: status("retrying") == status("fresh") == "succeeded", 20,
                     message="the old pending deliveries recorded as succeeded")
                assert [status(w) for w in ("succeeded", "failed", "held", "cancelled")] == [
                    "succeeded", "failed", "held", "cancelled"]
                assert len(admin.get(f"/v1/deliveries/{old['deliveries']['retrying']}"
                                     "/attempts").json()["data"]) == 2
                # The old idempotency key still answers with its event.
                again = pub.post("/v1/events", headers={"idempotency-key": "idem-old-1"},
                                 json={"type": "order.created", "data": {"n": "idem"}})
                assert again.status_code == 200, again.text
                assert again.json()["id"] == events["idem"]

                # A tenant's event reaches none of the old subscriptions ...
                assert admin.put("/v1/tenants/acme", json={"name": "Acme"}).status_code == 201
                scoped = pub.post("/v1/events", json={"type": "order.created",
                                                      "tenant_id": "acme"})
                assert scoped.status_code == 202, scoped.text
                assert scoped.json()["deliveries"] == 0
                # ... a new tenant-less one goes to them as before (held for the disabled).
                new = pub.post("/v1/events", json={"type": "order.shipped"})
                assert new.status_code == 202, new.text
                assert new.json()["deliveries"] == 3
                made = admin.get(f"/v1/events/{new.json()['id']}/deliveries").json()["data"]
                assert sorted((d["subscription_id"], d["status"], d["tenant_id"])
                              for d in made) == sorted([(subs["on"], "pending", None),
                                                        (subs["admin"], "pending", None),
                                                        (subs["off"], "held", None)])
                for sub_name in ("on", "admin"):
                    poll(lambda s=sub_name: arrived(s, new.json()["id"]), 20,
                         message=f"the new event at {sub_name}")
                assert scoped.json()["id"] not in receiver.ids()
                assert not arrived("off", new.json()["id"]) and not arrived("gone", new.json()[
                    "id"])
                counts = {t: scalar(url, f"SELECT count(*) FROM {t}") for t in DATA_TABLES}

    # Down to 0004 and back to head, with all of it in place.
    migrate.downgrade(url, "0004")
    assert scalar(url, "SELECT version_num FROM alembic_version") == "0004"
    assert "tenant" not in _tables(url, engine)
    assert {t: scalar(url, f"SELECT count(*) FROM {t}") for t in DATA_TABLES} == counts
    migrate.upgrade(url)
    assert scalar(url, "SELECT version_num FROM alembic_version") == migrate.head()
    assert {t: scalar(url, f"SELECT count(*) FROM {t}") for t in DATA_TABLES} == counts
    for table, added in TENANT_COLUMNS.items():
        for column in added - NOT_NULL_ADDED:
            assert scalar(url, f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL") == 0
    assert scalar(url, "SELECT count(*) FROM subscription WHERE signature_scheme <> 'v1'") == 0
    assert scalar(url, "SELECT count(*) FROM delivery WHERE status = 'succeeded'") == 5
    with AppServer(_settings(url)) as server, httpx.Client(
            base_url=server.url, timeout=30,
            headers={"authorization": f"Bearer {old['plain']['pub']}"}) as pub:
        assert pub.post("/v1/events", json={"type": "order.x"}).status_code == 202


def test_delivery_leaves_room_for_hot_updates_on_postgresql(database_url):
    """Migration 0008: fillfactor 70 on delivery (PostgreSQL only; docs/indexes.md)."""
    migrate.upgrade(database_url)
    if not database_url.startswith("postgresql"):
        return
    options = scalar(database_url, "SELECT reloptions FROM pg_class WHERE relname = 'delivery'")
    assert options == ["fillfactor=70"]
