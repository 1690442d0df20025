"""``subscriptions list``, ``disable`` and ``enable``."""

from __future__ import annotations

import typer

from .. import tables
from ..store import Store
from .direct import every_page, known_subscription, run
from .groups import DIRECT, subscriptions_app
from .output import api_schemas, console, print_json, print_rows, tenant_option, when

SUBSCRIPTION_ID = typer.Argument(..., metavar="ID", help="the subscription's id (sub_…)")
SUBSCRIPTION_COLUMNS = [
    tables.Column("id"), tables.Column("state"), tables.Column("tenant"),
    tables.Column("created (UTC)"), tables.Column("url", whole=False),
    tables.Column("event types", whole=False)]


@subscriptions_app.command("list", help=(
    "List every subscription, newest first (never their signing secrets).\n\n"
    "Shows id, state (enabled, or disabled and why), tenant, when it was created (UTC), url "
    "and event types, each whole: a table when the terminal is wide enough, else one block per "
    "subscription."
    f"\n\n{DIRECT}"))
def subscriptions_list(
    tenant: str | None = tenant_option("only this tenant's subscriptions"),
    as_json: bool = typer.Option(
        False, "--json",
        help="print a JSON array on stdout with the API's Subscription fields, less the "
             "signing secret (left out on purpose)"),
) -> None:
    rows = run(lambda store: every_page(
        lambda cursor: store.list_subscriptions(None, cursor, 500, "desc", tenant_id=tenant)))
    if as_json:
        out = api_schemas().SubscriptionOut
        print_json([out.of(row).model_dump(mode="json", exclude={"secret"}) for row in rows])
        return
    screen = console()
    if not rows:
        screen.print("no subscriptions")
        return
    print_rows(screen, SUBSCRIPTION_COLUMNS, [
        [row["id"], "enabled" if row["enabled"] else f"disabled ({row['disabled_reason']})",
         row["tenant_id"] or "", when(row["created_at"]), row["url"], ", ".join(row["event_types"])]
        for row in rows])


def _set_enabled(sub_id: str, enabled: bool) -> None:
    async def body(store: Store) -> None:
        with known_subscription(sub_id):
            await store.update_subscription(sub_id, None, {"enabled": enabled})

    run(body)


@subscriptions_app.command("disable", help=(
    "Disable a subscription: nothing more is sent to it.\n\n"
    "Its pending deliveries, and those of new events, wait as `held` until it is enabled "
    f"again (an attempt already under way finishes).\n\n{DIRECT}"))
def subscriptions_disable(sub_id: str = SUBSCRIPTION_ID) -> None:
    _set_enabled(sub_id, False)
    typer.echo(f"subscription {sub_id} disabled; its deliveries are held until it is enabled")


@subscriptions_app.command("enable", help=(
    "Enable a subscription and release its held deliveries.\n\n"
    "Clears its disabled reason; its held deliveries become pending, oldest first, each with "
    f"a fresh retry budget.\n\n{DIRECT}"))
def subscriptions_enable(sub_id: str = SUBSCRIPTION_ID) -> None:
    _set_enabled(sub_id, True)
    typer.echo(f"subscription {sub_id} enabled; its held deliveries are pending again")
