"""The operator commands, run as real processes on a real database (SQLite and PostgreSQL).

Data is made through the Store or a running app; the command runs with no app and no worker,
so the rows it leaves are asserted as they are.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pty
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
import typer.main
from typer.testing import CliRunner

from dispatcher import ids
from dispatcher.api.schemas import DeliveryOut, KeyOut, SubscriptionOut
from dispatcher.cli import DeliveryStatus
from dispatcher.cli import app as cli_app
from dispatcher.clock import utcnow
from dispatcher.config import Settings
from dispatcher.database import open_database
from dispatcher.models import attempt_table, delivery_table, event_table, subscription_table
from dispatcher.store import Store, encode_payload

from .databases import rows, scalar
from .harness import Receiver, Reply, poll
from .screens import row_of, squashed

T = TypeVar("T")


def cli_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DISPATCHER_") and k != "COLUMNS"}
    return env | {"DISPATCHER_DATABASE_URL": url} | extra


def cli(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``dispatcher ARGS`` as its own process on the database at ``url``, as a script runs
    it: no terminal on stdin (so it never asks), output piped."""
    done = subprocess.run([sys.executable, "-m", "dispatcher.cli", *args],
                          env=cli_env(url, **env), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def ok(url: str, *args: str, **env: str) -> str:
    done = cli(url, *args, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def on_store(url: str, body: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = Store(open_database(Settings(database_url=url)))
        try:
            return await body(store)
        finally:
            await store.db.dispose()

    return asyncio.run(run())


def status_of(url: str, delivery_id: str) -> str:
    return scalar(url, "SELECT status FROM delivery WHERE id = :id", id=delivery_id)


# ---- help ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("command", "options"), [
    (["deliveries", "list"],
     ["--status", "--subscription", "--event-type", "--since", "--until", "--limit", "--json"]),
    (["replay"],
     ["--status", "--subscription", "--event-type", "--since", "--until", "--batch", "--json",
      "--dry-run", "--yes"]),
    (["subscriptions", "list"], ["--json", "secret"]),
    (["keys", "list"], ["--json", "hash"]),
    (["subscriptions", "disable"], ["ID", "held"]),
    (["subscriptions", "enable"], ["ID", "held"]),
    (["subscriptions", "options"], ["ID", "--retry-schedule", "--timeout", "global"]),
    (["keys", "create"], ["--role", "--name", "--json", "admin", "publisher", "subscriber"]),
    (["prune"], ["--days", "--include-failed", "--json", "--dry-run", "--yes"]),
])
def test_help_explains_each_command(command: list[str], options: list[str]) -> None:
    done = cli("sqlite+aiosqlite:///unused.db", *command, "--help")
    assert done.returncode == 0, done.stderr
    for option in options:
        assert option in done.stdout, (command, option)
    # The decision every operator command states: the database, not the API.
    assert "DISPATCHER_DATABASE_URL" in done.stdout
    assert "API key" in done.stdout


def test_top_level_help_lists_the_operator_commands() -> None:
    out = ok("sqlite+aiosqlite:///unused.db", "--help")
    # secrets too: `python -m dispatcher.cli` reads the whole module before it runs.
    for name in ("deliveries", "replay", "subscriptions", "keys", "prune", "serve", "secrets"):
        assert name in out


def test_python_m_runs_the_secrets_commands(database_url: str) -> None:
    key = ok(database_url, "secrets", "generate-key").strip()
    assert len(base64.urlsafe_b64decode(key)) == 32
    on_store(database_url, lambda store: store.create_subscription(
        "key_test", {"url": "http://127.0.0.1:9/h"}))
    done = ok(database_url, "secrets", "reseal", "--json", DISPATCHER_SECRET_KEY=key)
    assert json.loads(done) == {"resealed": 1}


def every_command() -> list[list[str]]:
    """Every command and group, as the words that name it (the top level is [])."""
    found: list[list[str]] = []

    def walk(command: Any, words: list[str]) -> None:
        found.append(words)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*words, name])

    walk(typer.main.get_command(cli_app), [])
    return found


def test_no_help_shows_a_value_for_a_flag() -> None:
    commands = every_command()
    assert ["keys", "list"] in commands and ["secrets", "reseal"] in commands
    runner = CliRunner()  # in this process: one help after another, quickly
    for words in commands:
        done = runner.invoke(cli_app, [*words, "--help"], env={"COLUMNS": "120"})
        assert done.exit_code == 0, (words, done.output)
        assert "--help" in done.output
        assert "<bool>" not in done.output, words
    assert "<bool>" not in ok("sqlite+aiosqlite:///unused.db", "prune", "--help")
    # A flag is given alone: --json takes no value.
    done = cli("sqlite+aiosqlite:///unused.db", "deliveries", "list", "--json", "true")
    assert done.returncode == 2 and "true" in done.stderr


# ---- deliveries list ----------------------------------------------------------------------

LONG_URL = ("https://hooks.billing.example.com/webhooks/inbound/v2/customers/"
            "acct_7f3a9c2e4b1d/events?source=dispatcher&retry=true&token=abcdef0123456789")
LONG_ERRORS = [
    "HTTP 503: upstream connect error or disconnect/reset before headers. reset reason: "
    "connection termination; the receiver answered <html><body>Service Unavailable</body>",
    "the request could not be sent: ConnectError: [Errno 111] Connection refused while "
    "connecting to " + LONG_URL,
    "timeout: no complete answer within 10 s",
]


def realistic_rows(url: str) -> None:
    """Rows as a busy service has them: long URLs and event types, long errors, deliveries
    in every status, subscriptions enabled and disabled, keys with long names."""
    async def setup(store: Store) -> None:
        subs = [await store.create_subscription("key_test", {
            "url": LONG_URL + f"&n={n}",
            "event_types": ["invoice.*", "customer.subscription.trial_will_end", "user.created"],
        }) for n in range(3)]
        await store.update_subscription(subs[1]["id"], None, {"enabled": False})
        for event_type in ("invoice.payment_action_required", "user.created", "invoice.paid"):
            await store.accept_event("key_test", event_type, {"n": 1}, None, 60)
        found = (await store.list_deliveries(None, limit=100)).rows
        async with store.writer.begin() as conn:
            await conn.execute(sa.update(subscription_table)
                               .where(subscription_table.c.id == subs[2]["id"])
                               .values(enabled=False, disabled_reason="failing"))
            for n, delivery in enumerate(found):
                status = ["pending", "succeeded", "failed", "held", "cancelled"][n % 5]
                await conn.execute(
                    sa.update(delivery_table).where(delivery_table.c.id == delivery["id"])
                    .values(status=status, attempts=n, last_status_code=(None, 503, 500)[n % 3],
                            last_error=LONG_ERRORS[n % 3] if n % 4 else None))
        for role, name in [("admin", "ops on-call (primary, eu-west-1 and us-east-2 rotation)"),
                           ("publisher", "billing-service-production-eu-west-1-blue-green"),
                           ("subscriber", "partner [acme] integration")]:
            await store.create_key(role, name)

    on_store(url, setup)


def time_shown(rfc3339: str) -> str:
    return datetime.fromisoformat(rfc3339).strftime("%Y-%m-%d %H:%M:%S")


def test_list_commands_show_every_value_whole_at_80_to_120_columns(database_url: str) -> None:
    """No value is cut to "…" at any width: each id, status and time stays on one line, and
    every long value is all there once its wrapped lines are joined up."""
    realistic_rows(database_url)
    deliveries = json.loads(ok(database_url, "deliveries", "list", "--json"))
    subscriptions = json.loads(ok(database_url, "subscriptions", "list", "--json"))
    keys = json.loads(ok(database_url, "keys", "list", "--json"))
    assert {d["status"] for d in deliveries} == set(DeliveryStatus)
    assert {s["disabled_reason"] for s in subscriptions} == {None, "manual", "failing"}
    assert len(keys) == 3 and set(keys[0]) == set(KeyOut.model_fields)

    def whole_and_wrapped(d: dict[str, Any]) -> tuple[list[str], list[str]]:
        return {  # (values each on one line, values that may wrap)
            "deliveries": lambda: (
                [d["id"], d["status"], d["subscription_id"], time_shown(d["created_at"])],
                [d["event_type"], str(d["attempts"]), str(d["last_status_code"] or ""),
                 d["last_error"] or ""]),
            "subscriptions": lambda: (
                [d["id"], time_shown(d["created_at"]),
                 "enabled" if d["enabled"] else f"disabled ({d['disabled_reason']})"],
                [d["url"], *d["event_types"]]),
            "keys": lambda: ([d["id"], d["role"], time_shown(d["created_at"])], [d["name"]]),
        }[kind]()

    layouts = set()
    for width in (80, 100, 120):
        for kind, listed in [("deliveries", deliveries), ("subscriptions", subscriptions),
                             ("keys", keys)]:
            out = ok(database_url, kind, "list", COLUMNS=str(width))
            assert "…" not in out, (kind, width, out)
            assert max(len(line) for line in out.splitlines()) <= width, (kind, width, out)
            layouts.add("table" if "━" in out else "blocks")
            for d in listed:
                whole, wrapped = whole_and_wrapped(d)
                for value in whole:
                    assert any(value in line for line in out.splitlines()), (value, out)
                row = row_of(out, d["id"])
                for value in whole + wrapped:
                    assert squashed(value) in row, (kind, width, value, out)
    assert layouts == {"table", "blocks"}  # both ways of showing rows were read


def test_deliveries_list_table_json_and_filters(database_url: str) -> None:
    async def setup(store: Store) -> dict[str, Any]:
        invoices = await store.create_subscription(
            "key_test", {"url": "http://127.0.0.1:9/a", "event_types": ["invoice.*"]})
        everything = await store.create_subscription("key_test", {"url": "http://127.0.0.1:9/b"})
        paid, _ = await store.accept_event("key_test", "invoice.paid", {"n": 1}, None, 60)
        user, _ = await store.accept_event("key_test", "user.created", {"n": 2}, None, 60)
        found = (await store.list_deliveries(None, limit=10)).rows
        failed = next(d for d in found if d["subscription_id"] == invoices["id"])
        async with store.writer.begin() as conn:
            await conn.execute(
                sa.update(delivery_table).where(delivery_table.c.id == failed["id"])
                .values(status="failed", attempts=3, last_status_code=500,
                        last_error="HTTP 500: " + "the receiver is down " * 10))
        return {"invoices": invoices["id"], "everything": everything["id"],
                "failed": failed["id"], "all": {d["id"] for d in found}, "user": user["id"]}

    made = on_store(database_url, setup)
    assert len(made["all"]) == 3

    table = ok(database_url, "deliveries", "list")
    for delivery_id in made["all"]:
        assert delivery_id in table
    failed_line = next(line for line in table.splitlines() if made["failed"] in line)
    assert "failed" in failed_line and "500" in failed_line and made["invoices"] in failed_line
    assert "invoice.paid" in failed_line
    assert "HTTP 500: " + "the receiver is down " * 9 + "the receiver is down" in failed_line

    listed = json.loads(ok(database_url, "deliveries", "list", "--status", "failed", "--json"))
    assert [d["id"] for d in listed] == [made["failed"]]
    (failed,) = listed
    assert set(failed) == set(DeliveryOut.model_fields)  # the API's Delivery, field for field
    assert (failed["status"], failed["attempts"], failed["last_status_code"]) == ("failed", 3, 500)
    assert failed["last_error"].startswith("HTTP 500: the receiver is down")
    assert failed["created_at"].endswith("Z")
    datetime.fromisoformat(failed["created_at"])

    of_everything = json.loads(ok(database_url, "deliveries", "list", "--subscription",
                                  made["everything"], "--json"))
    assert {d["subscription_id"] for d in of_everything} == {made["everything"]}
    assert len(of_everything) == 2
    users = json.loads(ok(database_url, "deliveries", "list", "--event-type", "user.created",
                          "--json"))
    assert [d["event_id"] for d in users] == [made["user"]]
    later = (utcnow() + timedelta(hours=1)).isoformat()
    assert json.loads(ok(database_url, "deliveries", "list", "--since", later, "--json")) == []
    assert len(json.loads(ok(database_url, "deliveries", "list", "--until", later,
                             "--json"))) == 3

    newest = ok(database_url, "deliveries", "list", "--limit", "1")
    assert sum(d in newest for d in made["all"]) == 1
    assert "more match" in newest


@pytest.mark.parametrize(("args", "complaint"), [
    (["deliveries", "list", "--status", "lost"], "--status"),
    (["deliveries", "list", "--since", "yesterday"], "ISO 8601"),
    (["deliveries", "list", "--limit", "501"], "--limit"),
    (["replay", "--status", "pending"], "--status"),
    (["replay", "--until", "2025-13-01"], "ISO 8601"),
    (["replay", "--since", "2025-02-01", "--until", "2025-01-01"], "before --until"),
    (["keys", "create", "--role", "root", "--name", "x"], "--role"),
    (["keys", "create", "--role", "admin"], "--name"),
    (["prune", "--days", "-1"], "--days"),
])
def test_bad_option_values_are_usage_errors(args: list[str], complaint: str) -> None:
    done = cli("sqlite+aiosqlite:///unused.db", *args)
    assert done.returncode == 2
    assert complaint in done.stderr
    assert done.stdout == ""


# ---- replay -------------------------------------------------------------------------------

def test_replay_sends_failed_deliveries_again(serve, database_url: str) -> None:
    answer = {"status": 400}  # 400: failed at once, no retries
    with Receiver(lambda n, r: Reply(answer["status"])) as receiver:
        with serve() as admin:
            subs = [admin.post("/v1/subscriptions", json={"url": receiver.url}).json()["id"]
                    for _ in range(2)]
            admin.post("/v1/events", json={"type": "invoice.paid", "data": {}})
            poll(lambda: scalar(database_url,
                                "SELECT count(*) FROM delivery WHERE status = 'failed'") == 2,
                 message="two failed deliveries")
        # No app and no worker from here: what replay leaves is what the rows show.
        first, second = (scalar(database_url,
                                "SELECT id FROM delivery WHERE subscription_id = :s", s=s)
                         for s in subs)

        done = cli(database_url, "replay", "--subscription", subs[0])
        assert done.returncode == 0, done.stderr
        assert done.stdout == "replayed 1 delivery\n"
        assert "replaying" in done.stderr  # the progress bar
        state = "SELECT status, next_trigger, attempts, retry_base FROM delivery WHERE id = :id"
        assert tuple(rows(database_url, state, id=first)[0]) == ("pending", "replay", 1, 1)
        assert status_of(database_url, second) == "failed"

        done = cli(database_url, "replay", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"replayed": 1}
        assert "replaying" not in done.stderr
        assert tuple(rows(database_url, state, id=second)[0]) == ("pending", "replay", 1, 1)
        assert ok(database_url, "replay") == "replayed 0 deliveries\n"

        # A worker then sends them; their attempts carry trigger `replay`.
        answer["status"] = 200
        with serve():
            poll(lambda: scalar(database_url,
                                "SELECT count(*) FROM delivery WHERE status = 'succeeded'") == 2,
                 message="replayed deliveries succeeded")
        for delivery_id in (first, second):
            attempts = rows(database_url, "SELECT trigger, outcome FROM attempt "
                            "WHERE delivery_id = :id ORDER BY number", id=delivery_id)
            assert [tuple(a) for a in attempts] == [("scheduled", "failed"),
                                                    ("replay", "succeeded")]
        assert receiver.count() == 4


# ---- subscriptions ------------------------------------------------------------------------

def test_subscriptions_list_disable_enable(database_url: str) -> None:
    async def setup(store: Store) -> tuple[dict[str, Any], str]:
        sub = await store.create_subscription(
            "key_test", {"url": "http://127.0.0.1:9/hook",
                         "event_types": ["invoice.*", "user.created"]})
        await store.accept_event("key_test", "invoice.paid", {}, None, 60)
        (delivery,) = (await store.list_deliveries(None)).rows
        return sub, delivery["id"]

    sub, before = on_store(database_url, setup)
    secret = sub["secrets"][0]["secret"]

    table = ok(database_url, "subscriptions", "list")
    line = next(line for line in table.splitlines() if sub["id"] in line)
    assert "http://127.0.0.1:9/hook" in line and "invoice.*, user.created" in line
    assert "enabled" in line
    assert secret not in table
    listed = json.loads(ok(database_url, "subscriptions", "list", "--json"))
    assert [s["id"] for s in listed] == [sub["id"]]
    assert set(listed[0]) == set(SubscriptionOut.model_fields) - {"secret"}
    assert (listed[0]["enabled"], listed[0]["disabled_reason"]) == (True, None)
    assert "whsec_" not in json.dumps(listed)

    assert "disabled" in ok(database_url, "subscriptions", "disable", sub["id"])
    assert status_of(database_url, before) == "held"
    (after, _) = on_store(database_url, lambda store: store.accept_event(
        "key_test", "invoice.paid", {}, None, 60))
    new = scalar(database_url, "SELECT id FROM delivery WHERE event_id = :e", e=after["id"])
    assert status_of(database_url, new) == "held"
    listed = json.loads(ok(database_url, "subscriptions", "list", "--json"))
    assert (listed[0]["enabled"], listed[0]["disabled_reason"]) == (False, "manual")
    assert "disabled (manual)" in next(
        line for line in ok(database_url, "subscriptions", "list").splitlines()
        if sub["id"] in line)

    assert "enabled" in ok(database_url, "subscriptions", "enable", sub["id"])
    for delivery_id in (before, new):
        assert status_of(database_url, delivery_id) == "pending"
    assert scalar(database_url, "SELECT count(*) FROM delivery "
                  "WHERE status = 'pending' AND next_attempt_at IS NOT NULL") == 2
    listed = json.loads(ok(database_url, "subscriptions", "list", "--json"))
    assert (listed[0]["enabled"], listed[0]["disabled_reason"]) == (True, None)


def test_subscriptions_options_show_and_change(database_url: str) -> None:
    sub = on_store(database_url, lambda store: store.create_subscription(
        "key_test", {"url": "http://127.0.0.1:9/hook"}))
    # The global settings as the operator's environment has them.
    env = {"DISPATCHER_RETRY_SCHEDULE": "5,300", "DISPATCHER_DELIVERY_TIMEOUT_SECONDS": "15"}
    assert ok(database_url, "subscriptions", "options", sub["id"], **env).splitlines() == [
        "retry schedule: 5, 300 s (global)", "attempt deadline: 15 s (global)"]
    changed = ok(database_url, "subscriptions", "options", sub["id"],
                 "--retry-schedule", "10, 60,600.5", "--timeout", "30", **env)
    assert changed.splitlines() == ["retry schedule: 10, 60, 600.5 s",
                                    "attempt deadline: 30 s"]
    row = on_store(database_url, lambda store: store.get_subscription(sub["id"], None))
    assert (row["retry_schedule"], row["timeout_seconds"]) == ([10, 60, 600.5], 30)
    # One at a time; the other stays.
    assert ok(database_url, "subscriptions", "options", sub["id"], "--timeout", "global",
              **env).splitlines()[1] == "attempt deadline: 15 s (global)"
    row = on_store(database_url, lambda store: store.get_subscription(sub["id"], None))
    assert (row["retry_schedule"], row["timeout_seconds"]) == ([10, 60, 600.5], None)
    for bad, says in ((["--timeout", "61"], "timeout_seconds: must be at most 60"),
                      (["--retry-schedule", "5,-1"], "retry_schedule.1: must be greater than 0"),
                      (["--retry-schedule", "soon"], "write delays in seconds")):
        done = cli(database_url, "subscriptions", "options", sub["id"], *bad)
        assert done.returncode == 2 and says in done.stderr, done.stderr
    row = on_store(database_url, lambda store: store.get_subscription(sub["id"], None))
    assert row["retry_schedule"] == [10, 60, 600.5]


@pytest.mark.parametrize("args", [
    ["subscriptions", "disable"], ["subscriptions", "enable"], ["replay", "--subscription"],
    ["subscriptions", "options"],
])
def test_unknown_subscription_is_a_one_line_error(database_url: str, args: list[str]) -> None:
    missing = ids.new_id("sub")
    done = cli(database_url, *args, missing)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip() == f"error: no subscription {missing!r}"


def test_unreachable_database_is_a_one_line_error(databases) -> None:
    done = cli(databases.unreachable_url(), "deliveries", "list")
    assert done.returncode == 1
    assert done.stderr.startswith("error: could not use the database")
    assert len(done.stderr.strip().splitlines()) == 1


# ---- keys ---------------------------------------------------------------------------------

def test_keys_create_prints_a_key_that_authenticates(database_url: str) -> None:
    out = ok(database_url, "keys", "create", "--role", "publisher", "--name", "billing")
    key = out.strip().splitlines()[-1]
    assert key.startswith("dk_")
    found = on_store(database_url, lambda store: store.authenticate(key))
    assert found is not None and (found["role"], found["name"]) == ("publisher", "billing")
    assert found["id"] in out

    made = json.loads(ok(database_url, "keys", "create", "--role", "admin", "--name", "ops",
                         "--json"))
    assert set(made) == {"id", "role", "name", "key", "tenant_id", "created_at"}
    found = on_store(database_url, lambda store: store.authenticate(made["key"]))
    assert found is not None and (found["id"], found["role"]) == (made["id"], "admin")
    # Only its hash is stored.
    assert scalar(database_url, "SELECT count(*) FROM api_key WHERE key_hash = :k",
                  k=made["key"]) == 0


# ---- prune --------------------------------------------------------------------------------

def old_id(prefix: str, when: datetime) -> str:
    """An id made at ``when``: the time part of that moment, then random bits."""
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    made = ids.time_bound(prefix, when)[:-16] + "".join(
        secrets.choice(alphabet) for _ in range(16))
    assert ids.is_id(made, prefix)
    return made


def old_rows(database_url: str) -> dict[str, str]:
    """Deliveries 40 days old (one succeeded with 2 attempts, one failed) and one recent."""
    now = utcnow()
    old = now - timedelta(days=40)

    async def setup(store: Store) -> dict[str, str]:
        sub = await store.create_subscription("key_test", {"url": "http://127.0.0.1:9/h"})
        made: dict[str, str] = {}
        async with store.writer.begin() as conn:
            for name, when, status, attempts in [("done", old, "succeeded", 2),
                                                 ("failed", old, "failed", 1),
                                                 ("recent", now, "succeeded", 1)]:
                event_id, delivery_id = old_id("evt", when), old_id("dlv", when)
                await conn.execute(sa.insert(event_table), {
                    "id": event_id, "type": "invoice.paid", "publisher": "key_test",
                    "payload": encode_payload("invoice.paid", when, {}), "created_at": when})
                await conn.execute(sa.insert(delivery_table), {
                    "id": delivery_id, "event_id": event_id, "event_type": "invoice.paid",
                    "subscription_id": sub["id"], "status": status, "attempts": attempts,
                    "created_at": when, "updated_at": when})
                await conn.execute(sa.insert(attempt_table), [{
                    "id": old_id("att", when), "delivery_id": delivery_id, "number": n + 1,
                    "trigger": "scheduled", "started_at": when, "duration_ms": 5,
                    "status_code": 200 if status == "succeeded" else 500,
                    "outcome": "succeeded" if status == "succeeded" else "failed",
                } for n in range(attempts)])
                made[name], made[name + "_event"] = delivery_id, event_id
        return made

    return on_store(database_url, setup)


def left(database_url: str) -> tuple[set[str], set[str], int]:
    return ({r[0] for r in rows(database_url, "SELECT id FROM delivery")},
            {r[0] for r in rows(database_url, "SELECT id FROM event")},
            scalar(database_url, "SELECT count(*) FROM attempt"))


def test_prune_removes_old_finished_deliveries(database_url: str) -> None:
    now = utcnow()
    made = old_rows(database_url)

    out = ok(database_url, "prune")  # default: DISPATCHER_RETENTION_DAYS, 30
    assert out.startswith("pruned 1 delivery, 2 attempts and 1 event")
    deliveries, events, attempts = left(database_url)
    assert deliveries == {made["failed"], made["recent"]}
    assert events == {made["failed_event"], made["recent_event"]}
    assert attempts == 2  # the failed one's and the recent one's

    nothing = json.loads(ok(database_url, "prune", "--days", "60", "--include-failed", "--json"))
    assert (nothing["deliveries"], nothing["attempts"], nothing["events"]) == (0, 0, 0)
    assert left(database_url)[0] == {made["failed"], made["recent"]}

    counts = json.loads(ok(database_url, "prune", "--days", "30", "--include-failed", "--json"))
    assert (counts["deliveries"], counts["attempts"], counts["events"]) == (1, 1, 1)
    assert datetime.fromisoformat(counts["older_than"]) < now - timedelta(days=29)
    assert left(database_url) == ({made["recent"]}, {made["recent_event"]}, 1)


def test_prune_dry_run_counts_what_prune_deletes_and_changes_nothing(database_url: str) -> None:
    made = old_rows(database_url)
    before = left(database_url)

    out = ok(database_url, "prune", "--dry-run")
    assert out.startswith("dry run: would delete 1 delivery, 2 attempts and 1 event "
                          "(finished, created before ")
    assert "failed ones kept" in out and out.rstrip().endswith("nothing changed")
    would = json.loads(ok(database_url, "prune", "--dry-run", "--include-failed", "--json"))
    assert would["dry_run"] is True
    assert would["would_delete"] == {"deliveries": 2, "attempts": 3, "events": 2,
                                    "portal_links": 0}
    datetime.fromisoformat(would["older_than"])
    assert left(database_url) == before

    # What the dry run counted is what prune then deletes.
    done = json.loads(ok(database_url, "prune", "--include-failed", "--json"))
    assert {k: v for k, v in done.items() if k != "older_than"} == would["would_delete"]
    assert left(database_url) == ({made["recent"]}, {made["recent_event"]}, 1)


def failed_deliveries(database_url: str) -> tuple[str, list[str]]:
    """Two subscriptions, and a failed delivery of an invoice.paid event to each: the id of
    the first subscription, and the two deliveries."""
    async def setup(store: Store) -> tuple[str, list[str]]:
        subs = [await store.create_subscription("key_test", {"url": "http://127.0.0.1:9/h"})
                for _ in range(2)]
        await store.accept_event("key_test", "invoice.paid", {}, None, 60)
        async with store.writer.begin() as conn:
            await conn.execute(sa.update(delivery_table).values(status="failed", attempts=1))
        found = (await store.list_deliveries(None, limit=10)).rows
        return subs[0]["id"], sorted(d["id"] for d in found)

    return on_store(database_url, setup)


def statuses(database_url: str) -> list[str]:
    return [r[0] for r in rows(database_url, "SELECT status FROM delivery ORDER BY id")]


def test_replay_dry_run_counts_the_matches_and_changes_nothing(database_url: str) -> None:
    sub, _ = failed_deliveries(database_url)

    out = ok(database_url, "replay", "--dry-run", "--subscription", sub,
             "--since", "2025-01-31")
    assert out == (f"dry run: would replay 1 failed delivery of subscription {sub} created at "
                   "or after 2025-01-31 00:00:00 UTC; nothing changed\n")
    would = json.loads(ok(database_url, "replay", "--dry-run", "--json"))
    assert would == {"dry_run": True, "would_replay": 2, "filter": {
        "status": "failed", "subscription_id": None, "event_type": None, "tenant_id": None,
        "since": None, "until": None}}
    assert statuses(database_url) == ["failed", "failed"]
    assert json.loads(ok(database_url, "replay", "--json")) == {"replayed": 2}


def in_terminal(url: str, *args: str, answer: str | None = None) -> tuple[int, str]:
    """``dispatcher ARGS`` with a terminal (a pseudo-terminal) on stdin, stdout and stderr, as
    an operator runs it; ``answer`` is typed once it asks [y/N]. Its exit status and output."""
    main, side = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dispatcher.cli", *args], env=cli_env(url),
                            stdin=side, stdout=side, stderr=side, close_fds=True)
    os.close(side)
    seen = bytearray()
    deadline = time.monotonic() + 60

    def read_until(done: Callable[[], bool]) -> None:
        while not done():
            assert time.monotonic() < deadline, f"no end of {args}: {seen.decode()!r}"
            if select.select([main], [], [], 0.2)[0]:
                try:
                    chunk = os.read(main, 4096)
                except OSError:  # EIO: the command has ended and closed the terminal
                    return
                if not chunk:
                    return
                seen.extend(chunk)

    try:
        if answer is not None:
            read_until(lambda: b"[y/N]" in seen)
            os.write(main, answer.encode() + b"\n")
        read_until(lambda: False)
        status = proc.wait(timeout=60)
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = seen.decode(errors="replace")
    assert "Traceback" not in text, text
    return status, text


def test_replay_asks_in_a_terminal_unless_yes(database_url: str) -> None:
    sub, _ = failed_deliveries(database_url)
    of_sub = scalar(database_url, "SELECT id FROM delivery WHERE subscription_id = :s", s=sub)

    status, out = in_terminal(database_url, "replay", answer="n")
    assert "Replay 2 failed deliveries? [y/N]" in out
    assert status == 1 and "not confirmed: nothing replayed" in out
    assert statuses(database_url) == ["failed", "failed"]

    status, out = in_terminal(database_url, "replay", "--subscription", sub, answer="y")
    assert f"Replay 1 failed delivery of subscription {sub}? [y/N]" in out
    assert status == 0 and "replayed 1 delivery" in out
    assert status_of(database_url, of_sub) == "pending"
    assert statuses(database_url).count("failed") == 1

    status, out = in_terminal(database_url, "replay", "--yes")
    assert status == 0 and "[y/N]" not in out and "replayed 1 delivery" in out
    assert statuses(database_url) == ["pending", "pending"]


def test_prune_asks_in_a_terminal_unless_yes(database_url: str) -> None:
    made = old_rows(database_url)
    before = left(database_url)

    status, out = in_terminal(database_url, "prune", answer="n")
    assert "Delete 1 delivery, 2 attempts and 1 event (finished, created before " in out
    assert status == 1 and "not confirmed: nothing deleted" in out
    assert left(database_url) == before

    status, out = in_terminal(database_url, "prune", answer="y")
    assert status == 0 and "pruned 1 delivery, 2 attempts and 1 event" in out
    assert made["done"] not in left(database_url)[0]

    status, out = in_terminal(database_url, "prune", "--include-failed", "-y")
    assert status == 0 and "[y/N]" not in out and "pruned 1 delivery, 1 attempt" in out
    assert left(database_url) == ({made["recent"]}, {made["recent_event"]}, 1)


@pytest.mark.parametrize("command", [["serve"], ["api"], ["worker"], ["db", "upgrade"]])
@pytest.mark.parametrize(("setting", "value", "says"), [
    ("PUBLIC_URL", "hooks.example.com/x", "scheme://host[:port]"),
    ("PORTAL_ACCENT", "red", "PORTAL_ACCENT"),
    ("WORKER_CONCURRENCY", "many", "WORKER_CONCURRENCY"),
    ("WORKER_PROCESSES", "65", "less than or equal to 64"),
])
def test_a_bad_setting_stops_a_server_command_with_one_line(tmp_path, command, setting, value,
                                                            says):
    done = cli(f"sqlite+aiosqlite:///{tmp_path / 'never.db'}", *command,
               **{f"DISPATCHER_{setting}": value})
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: bad setting DISPATCHER_{setting}: "), done.stderr
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Value error" not in done.stderr
    assert not (tmp_path / "never.db").exists()  # stopped before opening anything


@pytest.mark.parametrize(("counts", "said"), [
    ({"deliveries": 1, "attempts": 2, "events": 1, "portal_links": 0},
     "1 delivery, 2 attempts and 1 event"),
    ({"deliveries": 0, "attempts": 0, "events": 0, "portal_links": 3},
     "0 deliveries, 0 attempts, 0 events and 3 ended portal links"),
])
def test_what_prune_says_it_deleted(counts, said):
    from dispatcher.cli.prune import _pruned

    assert _pruned(counts) == said
