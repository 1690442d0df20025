"""``subscriptions list``, ``disable``, ``enable`` and ``options``."""

from __future__ import annotations

from typing import Any

import typer

from .. import tables
from ..store import Store
from .direct import every_page, fail, known_subscription, load_settings, run
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


GLOBAL = "global"


def _options_asked(schedule: str | None, timeout: str | None) -> dict[str, object]:
    """The changes asked for, checked as the API checks them; ``global``: the global one."""
    # The dashboard's and portal's reading of the same two fields, the API's checks.
    from ..ui.pages.subscriptions import delivery_options

    form = {}
    if schedule is not None:
        form["retry_schedule"] = "" if schedule.strip() == GLOBAL else schedule
    if timeout is not None:
        form["timeout_seconds"] = "" if timeout.strip() == GLOBAL else timeout
    try:
        checked = delivery_options(form)
    except ValueError as exc:
        fail(str(exc), 2)
    return {name: checked[name] for name in
            (("retry_schedule",) if schedule is not None else ())
            + (("timeout_seconds",) if timeout is not None else ())}


@subscriptions_app.command("options", help=(
    "Show a subscription's delivery options, or change them.\n\n"
    "Without options it prints its retry schedule and attempt deadline (its own, or the "
    "global ones). --retry-schedule takes delays in seconds separated by commas (1 to 20, "
    "each over 0 and at most 604800), --timeout a whole number of seconds from 1 to 60; `global` "
    "for either goes back to the global setting. A change applies from the next attempt."
    f"\n\n{DIRECT}"))
def subscriptions_options(
    sub_id: str = SUBSCRIPTION_ID,
    schedule: str | None = typer.Option(
        None, "--retry-schedule", help="delays in seconds, e.g. 10,60,600; or global"),
    timeout: str | None = typer.Option(
        None, "--timeout", help="the attempt deadline in seconds, 1 to 60; or global"),
) -> None:
    changes = _options_asked(schedule, timeout)

    async def body(store: Store) -> dict[str, Any]:
        with known_subscription(sub_id):
            if changes:
                return await store.update_subscription(sub_id, None, changes)
            return await store.get_subscription(sub_id, None)

    row = run(body)
    settings = load_settings()
    own_schedule, own_timeout = row["retry_schedule"], row["timeout_seconds"]
    shown = ", ".join(f"{d:g}" for d in (own_schedule or settings.retry_schedule))
    typer.echo(f"retry schedule: {shown} s" + ("" if own_schedule else " (global)"))
    typer.echo(f"attempt deadline: {own_timeout or settings.delivery_timeout_seconds:g} s"
               + ("" if own_timeout else " (global)"))
