"""The operator commands for tenants, and ``--tenant`` on the other commands, run as real
processes on a real database (SQLite and PostgreSQL), as tests/test_cli.py runs them.

Two tenants are seeded with a subscription each, beside one subscription of no tenant, and
events published for each tenant, for none and to everyone (a broadcast), so that every
filter has rows of the other tenant to leave out.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from dispatcher.api.schemas import DeliveryOut, KeyOut, PortalLinkOut, SubscriptionOut, TenantOut
from dispatcher.clock import utcnow
from dispatcher.config import Settings
from dispatcher.ids import TENANT_ID_RULE
from dispatcher.models import delivery_table, tenant_table
from dispatcher.store import Store
from dispatcher.tenant_limits import MAX_METADATA_BYTES

from .conftest import TEST_SETTINGS
from .databases import rows, scalar
from .harness import AppServer
from .screens import row_of, squashed
from .test_cli import cli, in_terminal, ok, on_store
from .test_portal_links import LINK_URL, assert_gate, opened

UNUSED = "sqlite+aiosqlite:///unused.db"
# The longest id the rule allows: it must stay whole in every table.
LONG_TENANT = "globex-corporation.eu-west-1:" + "x" * 35


def seed(url: str) -> dict[str, Any]:
    """Tenants acme and LONG_TENANT with a subscription each, one subscription of no tenant,
    and four events: one for each tenant, one for none, one broadcast. Each tenant's
    subscription gets two deliveries (its own event and the broadcast), as does the one of no
    tenant. Also a key scoped to each tenant, and an admin key."""
    async def setup(store: Store) -> dict[str, Any]:
        made: dict[str, Any] = {"subs": {}, "keys": {}}
        for tenant in ("acme", LONG_TENANT):
            await store.put_tenant(tenant, tenant.title(), {"plan": "pro"})
        for tenant in ("acme", LONG_TENANT, None):
            sub = await store.create_subscription(
                "key_test", {"url": f"http://127.0.0.1:9/{tenant}", "tenant_id": tenant})
            made["subs"][tenant] = sub["id"]
        for tenant in ("acme", LONG_TENANT):
            made["keys"][tenant] = await store.create_key("subscriber", f"portal {tenant}",
                                                          tenant_id=tenant)
        made["keys"][None] = await store.create_key("admin", "ops")
        for tenant, broadcast in [("acme", False), (LONG_TENANT, False), (None, False),
                                  (None, True)]:
            await store.accept_event("key_test", "invoice.paid", {"for": tenant}, None, 60,
                                     tenant_id=tenant, broadcast=broadcast)
        return made

    made = on_store(url, setup)
    assert count_of(url, "delivery") == 6
    return made


def count_of(url: str, table: str, where: str = "1 = 1", **params: Any) -> int:
    return int(scalar(url, f"SELECT count(*) FROM {table} WHERE {where}", **params))


def everything(url: str) -> list[list[Any]]:
    """Every row that a tenant command could change, to compare before and after."""
    return [[tuple(r) for r in rows(url, f"SELECT {columns} FROM {table} ORDER BY id")]
            for table, columns in [
                ("tenant", "id, name, updated_at, deleted_at"),
                ("subscription", "id, enabled, deleted_at, updated_at"),
                ("delivery", "id, status, updated_at"),
                ("api_key", "id, deleted_at")]]


def fail_every_delivery(url: str) -> None:
    async def fail(store: Store) -> None:
        async with store.writer.begin() as conn:
            await conn.execute(sa.update(delivery_table).values(status="failed", attempts=1))

    on_store(url, fail)


def one_line_error(done: Any, status: int, *words: str) -> None:
    """Refused: ``status``, nothing on stdout, one line on stderr with ``words`` in it."""
    assert done.returncode == status, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


# ---- help ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("command", "options"), [
    (["tenants", "list"], ["--json"]),
    (["tenants", "put"], ["ID", "--name", "--metadata", "16 KiB", "--json"]),
    (["tenants", "delete"], ["ID", "--dry-run", "--yes", "--json", "cancelled", "keys"]),
    (["deliveries", "list"], ["--tenant"]),
    (["replay"], ["--tenant"]),
    (["subscriptions", "list"], ["--tenant"]),
    (["keys", "create"], ["--tenant", "subscriber keys only"]),
])
def test_help_explains_the_tenant_commands_and_flags(command: list[str],
                                                     options: list[str]) -> None:
    out = ok(UNUSED, *command, "--help", COLUMNS="200")
    for option in options:
        assert option in out, (command, option)
    assert "DISPATCHER_DATABASE_URL" in out
    assert "tenants" in ok(UNUSED, "--help")


# ---- tenants put and list -----------------------------------------------------------------

def test_tenants_put_creates_then_replaces(database_url: str) -> None:
    out = ok(database_url, "tenants", "put", "acme", "--name", "Acme Corp",
             "--metadata", '{"plan": "pro", "seats": 5}')
    assert out.splitlines()[0] == "created tenant acme"
    assert "Acme Corp" in out and '"seats": 5' in out
    found = on_store(database_url, lambda store: store.get_tenant("acme"))
    assert (found["name"], found["metadata"]) == ("Acme Corp", {"plan": "pro", "seats": 5})

    # As the API's PUT: the whole tenant, so what is left out goes back to its default.
    out = ok(database_url, "tenants", "put", "acme", "--name", "Acme")
    assert out.splitlines()[0] == "updated tenant acme"
    shown = json.loads(ok(database_url, "tenants", "put", "acme", "--metadata", "{}",
                          "--json"))
    assert set(shown) == set(TenantOut.model_fields)
    assert (shown["id"], shown["name"], shown["metadata"]) == ("acme", None, {})
    assert shown["created_at"] == TenantOut.model_validate(found).model_dump(
        mode="json")["created_at"]
    assert shown["updated_at"] > shown["created_at"]
    assert count_of(database_url, "tenant") == 1


def test_tenants_list_pages_through_every_tenant(database_url: str) -> None:
    assert ok(database_url, "tenants", "list") == "no tenants\n"
    start = utcnow() - timedelta(days=1)

    async def many(store: Store) -> None:  # more than one page of the store's 500
        async with store.writer.begin() as conn:
            await conn.execute(sa.insert(tenant_table), [
                {"id": f"t-{n:04d}", "name": f"Tenant {n}", "metadata": {"n": n},
                 "created_at": start + timedelta(seconds=n),
                 "updated_at": start + timedelta(seconds=n)} for n in range(501)])

    on_store(database_url, many)
    listed = json.loads(ok(database_url, "tenants", "list", "--json"))
    assert [t["id"] for t in listed] == [f"t-{n:04d}" for n in reversed(range(501))]
    assert set(listed[0]) == set(TenantOut.model_fields)
    assert listed[0]["metadata"] == {"n": 500}
    table = ok(database_url, "tenants", "list")
    assert sum(f"t-{n:04d}" in table for n in range(501)) == 501
    line = next(line for line in table.splitlines() if "t-0007" in line)
    assert "Tenant 7" in line and (start + timedelta(seconds=7)).strftime("%H:%M:%S") in line


@pytest.mark.parametrize(("args", "words"), [
    (["bad id"], ["ID", "'bad id'", TENANT_ID_RULE]),
    (["_starts-with-underscore"], ["is not a tenant id"]),
    (["x" * 65], ["is not a tenant id"]),
    (["acme", "--metadata", "{plan: pro}"], ["--metadata is not JSON"]),
    (["acme", "--metadata", '["plan"]'], ["--metadata must be a JSON object, not list"]),
    (["acme", "--metadata", '{"n": NaN}'], ["NaN is not a JSON value"]),
    (["acme", "--metadata", json.dumps({"k": "x" * (MAX_METADATA_BYTES - 7)})],
     [f"{MAX_METADATA_BYTES + 1} bytes as JSON", f"at most {MAX_METADATA_BYTES}"]),
    (["acme", "--name", " "], ["--name", "1 to 200"]),
    (["acme", "--name", "n" * 201], ["--name", "1 to 200"]),
])
def test_tenants_put_refuses_bad_input_in_one_line(database_url: str, args: list[str],
                                                   words: list[str]) -> None:
    one_line_error(cli(database_url, "tenants", "put", *args), 2, *words)
    assert count_of(database_url, "tenant") == 0


def test_metadata_of_exactly_the_limit_is_kept(database_url: str) -> None:
    metadata = {"k": "x" * (MAX_METADATA_BYTES - 8)}  # {"k":"…"}: 8 bytes besides the x's
    shown = json.loads(ok(database_url, "tenants", "put", "acme", "--metadata",
                          json.dumps(metadata), "--json"))
    assert shown["metadata"] == metadata


# ---- tenants delete -----------------------------------------------------------------------

def test_tenants_delete_dry_run_counts_and_changes_nothing(database_url: str) -> None:
    seed(database_url)
    before = everything(database_url)

    out = ok(database_url, "tenants", "delete", "acme", "--dry-run")
    assert out == ("dry run: would delete tenant acme, 1 subscription (their 2 open "
                   "deliveries cancelled) and 1 key; nothing changed\n")
    would = json.loads(ok(database_url, "tenants", "delete", "acme", "--dry-run", "--json"))
    assert would == {"dry_run": True, "would_delete": "acme", "subscriptions": 1,
                     "deliveries": 2, "keys": 1}
    assert everything(database_url) == before

    # What the dry run counted is what delete then does.
    done = json.loads(ok(database_url, "tenants", "delete", "acme", "--json"))
    assert done == {"deleted": "acme", "subscriptions": 1, "deliveries": 2, "keys": 1}


def test_tenants_delete_takes_only_that_tenants_things(database_url: str) -> None:
    made = seed(database_url)
    acme_sub = made["subs"]["acme"]

    out = ok(database_url, "tenants", "delete", "acme")  # a script: no terminal, no question
    assert out == ("deleted tenant acme, 1 subscription (their 2 open deliveries cancelled) "
                   "and 1 key\n")
    assert count_of(database_url, "tenant", "id = 'acme' AND deleted_at IS NULL") == 0
    assert count_of(database_url, "subscription", "deleted_at IS NOT NULL") == 1
    assert scalar(database_url, "SELECT deleted_at FROM subscription WHERE id = :s",
                  s=acme_sub) is not None
    assert [r[0] for r in rows(database_url, "SELECT DISTINCT status FROM delivery "
                               "WHERE subscription_id = :s", s=acme_sub)] == ["cancelled"]
    assert count_of(database_url, "delivery", "status = 'pending'") == 4  # the others'
    assert count_of(database_url, "delivery") == 6  # history stays until pruned
    gone = on_store(database_url, lambda store: store.authenticate(made["keys"]["acme"]["key"]))
    assert gone is None
    kept = on_store(database_url,
                    lambda store: store.authenticate(made["keys"][LONG_TENANT]["key"]))
    assert kept is not None and kept["tenant_id"] == LONG_TENANT
    assert [t["id"] for t in json.loads(ok(database_url, "tenants", "list", "--json"))] == [
        LONG_TENANT]

    one_line_error(cli(database_url, "tenants", "delete", "acme"), 1, "no tenant 'acme'")
    one_line_error(cli(database_url, "tenants", "delete", "acme", "--dry-run"), 1,
                   "no tenant 'acme'")
    one_line_error(cli(database_url, "tenants", "delete", "no/such"), 2, "is not a tenant id")


def test_tenants_delete_asks_in_a_terminal_unless_yes(database_url: str) -> None:
    seed(database_url)
    before = everything(database_url)

    status, out = in_terminal(database_url, "tenants", "delete", "acme", answer="n")
    assert ("Delete tenant acme, 1 subscription (their 2 open deliveries cancelled) and "
            "1 key? [y/N]") in out
    assert status == 1 and "not confirmed: nothing deleted" in out
    assert everything(database_url) == before

    status, out = in_terminal(database_url, "tenants", "delete", "acme", answer="y")
    assert status == 0 and "deleted tenant acme, 1 subscription" in out
    assert count_of(database_url, "tenant", "id = 'acme' AND deleted_at IS NULL") == 0

    status, out = in_terminal(database_url, "tenants", "delete", LONG_TENANT, "--yes")
    assert status == 0 and "[y/N]" not in out and f"deleted tenant {LONG_TENANT}" in out
    assert count_of(database_url, "tenant", "deleted_at IS NULL") == 0

    status, out = in_terminal(database_url, "tenants", "delete", "acme")
    assert status == 1 and "[y/N]" not in out and "error: no tenant 'acme'" in out


# ---- --tenant on the other commands -------------------------------------------------------

def test_deliveries_list_tenant_shows_only_that_tenants(database_url: str) -> None:
    made = seed(database_url)
    for tenant in ("acme", LONG_TENANT):
        listed = json.loads(ok(database_url, "deliveries", "list", "--tenant", tenant,
                               "--json"))
        # Its own event and the broadcast, nothing of the other tenant or of none.
        assert len(listed) == 2 and {d["tenant_id"] for d in listed} == {tenant}
        assert {d["subscription_id"] for d in listed} == {made["subs"][tenant]}
        assert set(listed[0]) == set(DeliveryOut.model_fields)
    assert json.loads(ok(database_url, "deliveries", "list", "--tenant", "nobody",
                         "--json")) == []
    everyone = json.loads(ok(database_url, "deliveries", "list", "--json"))
    assert sorted(str(d["tenant_id"]) for d in everyone) == sorted(
        ["acme", "acme", LONG_TENANT, LONG_TENANT, "None", "None"])

    # The tenant column: never cut at any width; on one line where the longest id fits (an
    # 80-column block has 61 columns left beside its labels: a 64-character id folds there).
    for width in (80, 100, 120):
        table = ok(database_url, "deliveries", "list", COLUMNS=str(width))
        for d in everyone:
            assert squashed(d["tenant_id"] or "") in row_of(table, d["id"])
        if width > 80:
            assert any(LONG_TENANT in line for line in table.splitlines())
        only = ok(database_url, "deliveries", "list", "--tenant", "acme", COLUMNS=str(width))
        assert {d["id"] for d in everyone if d["id"] in only} == {
            d["id"] for d in everyone if d["tenant_id"] == "acme"}


def test_subscriptions_list_tenant_shows_only_that_tenants(database_url: str) -> None:
    made = seed(database_url)
    for tenant in ("acme", LONG_TENANT):
        listed = json.loads(ok(database_url, "subscriptions", "list", "--tenant", tenant,
                               "--json"))
        assert [s["id"] for s in listed] == [made["subs"][tenant]]
        assert listed[0]["tenant_id"] == tenant
        assert set(listed[0]) == set(SubscriptionOut.model_fields) - {"secret"}
    table = ok(database_url, "subscriptions", "list", COLUMNS="100")
    for tenant, sub_id in made["subs"].items():
        assert squashed(tenant or "") in row_of(table, sub_id)
    assert any(LONG_TENANT in line for line in table.splitlines())
    only = ok(database_url, "subscriptions", "list", "--tenant", "acme")
    assert made["subs"]["acme"] in only
    assert made["subs"][LONG_TENANT] not in only and made["subs"][None] not in only


def test_replay_tenant_replays_only_that_tenants(database_url: str) -> None:
    made = seed(database_url)
    fail_every_delivery(database_url)
    acme_sub = made["subs"]["acme"]

    out = ok(database_url, "replay", "--tenant", "acme", "--dry-run")
    assert out == ("dry run: would replay 2 failed deliveries of tenant acme; "
                   "nothing changed\n")
    would = json.loads(ok(database_url, "replay", "--tenant", "acme", "--dry-run", "--json"))
    assert would["would_replay"] == 2 and would["filter"]["tenant_id"] == "acme"
    assert count_of(database_url, "delivery", "status = 'failed'") == 6

    status, out = in_terminal(database_url, "replay", "--tenant", "acme", answer="n")
    assert "Replay 2 failed deliveries of tenant acme? [y/N]" in out and status == 1
    assert count_of(database_url, "delivery", "status = 'failed'") == 6

    assert json.loads(ok(database_url, "replay", "--tenant", "acme", "--json")) == {
        "replayed": 2}
    replayed = rows(database_url, "SELECT subscription_id, tenant_id FROM delivery "
                    "WHERE status = 'pending'")
    assert sorted(tuple(r) for r in replayed) == [(acme_sub, "acme")] * 2
    assert count_of(database_url, "delivery", "status = 'failed'") == 4

    one_line_error(cli(database_url, "replay", "--tenant", "nobody"), 1, "no tenant 'nobody'")
    assert count_of(database_url, "delivery", "status = 'failed'") == 4


def test_keys_create_tenant_makes_a_scoped_subscriber_key(database_url: str) -> None:
    seed(database_url)
    out = ok(database_url, "keys", "create", "--role", "subscriber", "--name", "acme portal",
             "--tenant", "acme")
    assert "scoped to tenant acme" in out
    key = out.strip().splitlines()[-1]
    found = on_store(database_url, lambda store: store.authenticate(key))
    assert found is not None and (found["role"], found["tenant_id"]) == ("subscriber", "acme")
    made = json.loads(ok(database_url, "keys", "create", "--role", "subscriber", "--name", "g",
                         "--tenant", LONG_TENANT, "--json"))
    assert made["tenant_id"] == LONG_TENANT
    keys = count_of(database_url, "api_key")

    for role in ("admin", "publisher"):
        one_line_error(cli(database_url, "keys", "create", "--role", role, "--name", "x",
                           "--tenant", "acme"), 2,
                       f"only a subscriber key can be scoped to a tenant, not a {role} key")
    one_line_error(cli(database_url, "keys", "create", "--role", "subscriber", "--name", "x",
                       "--tenant", "nobody"), 1, "no tenant 'nobody'")
    assert count_of(database_url, "api_key") == keys

    listed = json.loads(ok(database_url, "keys", "list", "--json"))
    assert set(listed[0]) == set(KeyOut.model_fields)
    assert sorted(str(k["tenant_id"]) for k in listed) == sorted(
        ["acme", "acme", LONG_TENANT, LONG_TENANT, "None"])
    table = ok(database_url, "keys", "list", COLUMNS="100")
    for k in listed:
        assert squashed(k["tenant_id"] or "") in row_of(table, k["id"])
    assert any(LONG_TENANT in line for line in table.splitlines())


@pytest.mark.parametrize("args", [
    ["deliveries", "list", "--tenant"],
    ["replay", "--tenant"],
    ["replay", "--dry-run", "--tenant"],
    ["subscriptions", "list", "--tenant"],
    ["keys", "create", "--role", "subscriber", "--name", "x", "--tenant"],
])
@pytest.mark.parametrize("bad", ["two words", "ünïcode", "x" * 65])
def test_a_bad_tenant_flag_is_one_line(args: list[str], bad: str) -> None:
    one_line_error(cli(UNUSED, *args, bad), 2, "--tenant", repr(bad), "not a tenant id")


# ---- tenants portal-link and revoke-links -------------------------------------------------

def link_of(out: str) -> dict[str, str]:
    """The printed link: its URL's origin and token, and the lines below it by label."""
    lines = out.splitlines()
    found = LINK_URL.match(lines[0])
    assert found is not None, out
    shown = dict(line.strip().split(": ", 1) for line in lines[1:])
    return {"origin": found["origin"], "token": found["token"]} | {
        k: v.strip() for k, v in shown.items()}


def live_link(url: str, token: str) -> Any:
    return on_store(url, lambda store: store.portal_link(token=token))


def test_help_explains_the_portal_link_commands() -> None:
    out = ok(UNUSED, "tenants", "portal-link", "--help", COLUMNS="200")
    for words in ("ID", "--expires-in", "SECONDS", "--read-only", "--json",
                  "DISPATCHER_PUBLIC_URL", "revoke-links", "DISPATCHER_DATABASE_URL"):
        assert words in out, words
    out = ok(UNUSED, "tenants", "revoke-links", "--help", COLUMNS="200")
    for words in ("ID", "--json", "next request", "DISPATCHER_DATABASE_URL"):
        assert words in out, words
    listed = ok(UNUSED, "tenants", "--help", COLUMNS="200")
    assert "portal-link" in listed and "revoke-links" in listed
    # The bounds are the API's.
    from dispatcher.api.schemas import tenants as api
    from dispatcher.cli import tenants as command
    assert (command.PORTAL_MIN_SECONDS, command.PORTAL_MAX_SECONDS) == (
        api.PORTAL_MIN_SECONDS, api.PORTAL_MAX_SECONDS)


def test_tenants_portal_link_prints_a_link_that_opens_the_portal(database_url: str) -> None:
    seed(database_url)
    printed = link_of(ok(database_url, "tenants", "portal-link", "acme"))
    # The API's rule: no DISPATCHER_PUBLIC_URL, so http://HOST:PORT of the settings.
    assert printed["origin"] == Settings(database_url=UNUSED).public_origin() == \
        "http://127.0.0.1:8000"
    assert (printed["tenant"], printed["read-only"]) == ("acme", "no")
    link = live_link(database_url, printed["token"])
    assert link is not None and link.tenant_id == "acme" and link.read_only is False
    assert printed["expires"] == link.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert abs((link.expires_at - utcnow()).total_seconds() - 3600) < 30

    assert link_of(ok(database_url, "tenants", "portal-link", "acme",
                      DISPATCHER_PORT="9123"))["origin"] == "http://127.0.0.1:9123"
    assert link_of(ok(database_url, "tenants", "portal-link", "acme",
                      DISPATCHER_PUBLIC_URL="https://hooks.example.com/",
                      DISPATCHER_PORT="9123"))["origin"] == "https://hooks.example.com"

    shown = json.loads(ok(database_url, "tenants", "portal-link", LONG_TENANT, "--read-only",
                          "--expires-in", "60", "--json"))
    assert set(shown) == set(PortalLinkOut.model_fields) and shown["read_only"] is True
    token = LINK_URL.match(shown["url"])["token"]
    link = live_link(database_url, token)
    assert link is not None and link.tenant_id == LONG_TENANT and link.read_only is True
    assert PortalLinkOut.model_validate(shown).expires_at == link.expires_at
    assert 0 < (link.expires_at - utcnow()).total_seconds() <= 60

    # The portal opens to it: the read-only link, on the tenant's own endpoints.
    settings = Settings(**{**TEST_SETTINGS, "database_url": database_url})
    with AppServer(settings, workers=False) as server, opened(server.url, token) as portal:
        page = portal.get("/portal")
        assert page.status_code == 200 and 'id="read-only"' in page.text
        assert made_sub(database_url, LONG_TENANT) in page.text
        assert made_sub(database_url, "acme") not in page.text


def made_sub(url: str, tenant: str) -> str:
    return str(scalar(url, "SELECT id FROM subscription WHERE tenant_id = :t", t=tenant))


def test_tenants_portal_link_refuses_what_the_api_refuses(database_url: str) -> None:
    seed(database_url)
    one_line_error(cli(database_url, "tenants", "portal-link", "nobody"), 1,
                   "no tenant 'nobody'")
    one_line_error(cli(database_url, "tenants", "portal-link", "no/such"), 2,
                   "is not a tenant id")
    for seconds in ("59", "604801"):
        one_line_error(cli(database_url, "tenants", "portal-link", "acme", "--expires-in",
                           seconds), 2, "--expires-in", "60 to 604800")
    for bad in ("hooks.example.com", "https://hooks.example.com/portal"):
        one_line_error(cli(database_url, "tenants", "portal-link", "acme",
                           DISPATCHER_PUBLIC_URL=bad), 1, "bad setting DISPATCHER_PUBLIC_URL",
                       "scheme://host[:port]")
    one_line_error(cli(database_url, "tenants", "portal-link", "acme",
                       DISPATCHER_PORTAL_ENABLED="false"), 1, "DISPATCHER_PORTAL_ENABLED")
    ok(database_url, "tenants", "delete", "acme", "--yes")
    one_line_error(cli(database_url, "tenants", "portal-link", "acme"), 1, "no tenant 'acme'")
    assert count_of(database_url, "portal_link") == 0


def test_tenants_revoke_links_ends_every_link_made_so_far(database_url: str) -> None:
    seed(database_url)
    tokens = [link_of(ok(database_url, "tenants", "portal-link", "acme", *flags))["token"]
              for flags in ([], ["--read-only"])]
    theirs = link_of(ok(database_url, "tenants", "portal-link", LONG_TENANT))["token"]
    settings = Settings(**{**TEST_SETTINGS, "database_url": database_url})
    with AppServer(settings, workers=False) as server, \
            opened(server.url, tokens[0]) as portal, opened(server.url, theirs) as other:
        assert portal.get("/portal").status_code == 200
        out = ok(database_url, "tenants", "revoke-links", "acme")
        assert out == ("revoked 2 portal links of tenant acme; their sessions end at their "
                       "next request\n")
        assert_gate(portal.get("/portal"), made_sub(database_url, "acme"))
        assert other.get("/portal").status_code == 200  # another tenant's: its own
        assert json.loads(ok(database_url, "tenants", "revoke-links", "acme", "--json")) == {
            "tenant_id": "acme", "revoked": 0}
        after = link_of(ok(database_url, "tenants", "portal-link", "acme"))["token"]
        with opened(server.url, after) as again:
            assert again.get("/portal").status_code == 200
    assert [live_link(database_url, t) for t in tokens] == [None, None]
    assert live_link(database_url, theirs) is not None
    one_line_error(cli(database_url, "tenants", "revoke-links", "nobody"), 1,
                   "no tenant 'nobody'")
    one_line_error(cli(database_url, "tenants", "revoke-links", "no/such"), 2,
                   "is not a tenant id")
