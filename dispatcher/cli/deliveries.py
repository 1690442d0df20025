"""``deliveries list`` and ``replay``: deliveries by status, subscription, type and time."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import tables
from ..clock import rfc3339
from ..store import DeliveryFilter, Page, Store
from ..vocabulary import DeliveryStatus
from .direct import known_subscription, known_tenant, run
from .groups import DIRECT, app, deliveries_app
from .output import (
    DRY_RUN_HELP,
    YES,
    api_schemas,
    asks_first,
    console,
    count,
    declined,
    one_line,
    print_json,
    print_rows,
    tenant_option,
    time_option,
    when,
)


class ReplayStatus(StrEnum):
    """The statuses a replay takes (typer offers an enum's members as the choices)."""

    FAILED = DeliveryStatus.FAILED.value
    SUCCEEDED = DeliveryStatus.SUCCEEDED.value


# The filters that `deliveries list` and `replay` share.
ONLY_SUBSCRIPTION = typer.Option(None, "--subscription", metavar="ID",
                                 help="only deliveries of this subscription")
ONLY_EVENT_TYPE = typer.Option(None, "--event-type", metavar="TYPE",
                               help="only deliveries of this exact event type")
ONLY_TENANT = tenant_option("only deliveries to this tenant's subscriptions (broadcasts it "
                            "received included)")
CREATED_SINCE = time_option("only deliveries created at or after this time")
CREATED_UNTIL = time_option("only deliveries created before this time")

DELIVERY_COLUMNS = [
    tables.Column("id"), tables.Column("status"), tables.Column("event type", whole=False),
    tables.Column("subscription id"), tables.Column("tenant"), tables.Column("attempts"),
    tables.Column("last code"),
    tables.Column("created (UTC)"), tables.Column("last error", whole=False)]


def _window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise typer.BadParameter("--since must be before --until", param_hint="--since")


@deliveries_app.command("list", help=(
    "List deliveries, newest first.\n\n"
    "Shows id, status, event type, subscription, tenant, attempts, the last status code, when "
    "it was created (UTC) and the last error, each whole: a table when the terminal is wide "
    f"enough, else one block per delivery.\n\n{DIRECT}"))
def deliveries_list(
    status: DeliveryStatus | None = typer.Option(None, help="only deliveries in this status"),
    subscription: str | None = ONLY_SUBSCRIPTION,
    event_type: str | None = ONLY_EVENT_TYPE,
    tenant: str | None = ONLY_TENANT,
    since: datetime | None = CREATED_SINCE,
    until: datetime | None = CREATED_UNTIL,
    limit: int = typer.Option(50, min=1, max=500, help="show at most this many (1 to 500)"),
    as_json: bool = typer.Option(
        False, "--json",
        help="print a JSON array on stdout: one object per delivery, with the API's Delivery "
             "fields and RFC 3339 times"),
) -> None:
    _window(since, until)

    async def body(store: Store) -> Page:
        return await store.list_deliveries(
            None, status=status, subscription_id=subscription,
            event_type=event_type, tenant_id=tenant, since=since, until=until, limit=limit)

    page = run(body)
    if as_json:
        out = api_schemas().DeliveryOut
        print_json([out.model_validate(row).model_dump(mode="json") for row in page.rows])
        return
    screen = console()
    if not page.rows:
        screen.print("no deliveries match")
        return
    print_rows(screen, DELIVERY_COLUMNS, [
        [row["id"], row["status"], row["event_type"], row["subscription_id"],
         row["tenant_id"] or "", str(row["attempts"]), "" if row["last_status_code"] is None
         else str(row["last_status_code"]), when(row["created_at"]), one_line(row["last_error"])]
        for row in page.rows])
    if page.next_cursor is not None:
        screen.print(f"(the {limit} newest shown; more match: raise --limit or narrow the "
                     "filter)")


def _matching(f: DeliveryFilter, number: int) -> str:
    """``number`` deliveries of the filter ``f`` in words, e.g. "3 failed deliveries of
    subscription sub_1"."""
    words = [count(number, f"{f.status} delivery", f"{f.status} deliveries")]
    if f.subscription_id is not None:
        words.append(f"of subscription {f.subscription_id}")
    if f.event_type is not None:
        words.append(f"of event type {f.event_type}")
    if f.tenant_id is not None:
        words.append(f"of tenant {f.tenant_id}")
    if f.since is not None:
        words.append(f"created at or after {when(f.since)} UTC")
    if f.until is not None:
        words.append(f"{'and' if f.since else 'created'} before {when(f.until)} UTC")
    return " ".join(words)


@app.command(help=(
    "Send matching deliveries again (default: the failed ones; with --tenant, only that "
    "tenant's).\n\n"
    "Each match goes back to pending with a fresh retry budget, and its next attempts carry "
    "trigger `replay`; a running worker sends them. Matches of a disabled subscription "
    "become held; deleted subscriptions are left alone. Counts the matches first (--dry-run "
    "stops there), asks for confirmation in a terminal (unless --yes), and shows a progress "
    f"bar while it works through them in batches.\n\n{DIRECT}"))
def replay(
    status: ReplayStatus = typer.Option(ReplayStatus.FAILED,
                                        help="replay deliveries in this status"),
    subscription: str | None = ONLY_SUBSCRIPTION,
    event_type: str | None = ONLY_EVENT_TYPE,
    tenant: str | None = ONLY_TENANT,
    since: datetime | None = CREATED_SINCE,
    until: datetime | None = CREATED_UNTIL,
    batch: int = typer.Option(1000, min=1, max=10_000,
                              help="deliveries per transaction (1 to 10000)"),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP.format("replayed")),
    yes: bool = YES,
    as_json: bool = typer.Option(
        False, "--json",
        help='print {"replayed": N} on stdout, no progress bar; with --dry-run '
             '{"dry_run": true, "would_replay": N, "filter": {...}}'),
) -> None:
    _window(since, until)
    chosen = DeliveryFilter(status=DeliveryStatus(status), subscription_id=subscription,
                            event_type=event_type, tenant_id=tenant, since=since,
                            until=until)

    async def body(store: Store) -> int | None:
        if subscription is not None:
            with known_subscription(subscription):
                await store.get_subscription(subscription, None)
        if tenant is not None:
            with known_tenant():
                await store.get_tenant(tenant)
        total: int = await store.count_replayable(chosen)
        if dry_run:
            return total
        if total and asks_first(yes) and not typer.confirm(
                f"Replay {_matching(chosen, total)}?", default=False, err=True):
            return None
        if as_json or total == 0:
            done: int = await store.replay(chosen, batch)
            return done
        columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=console(stderr=True)) as bar:
            task = bar.add_task("replay", total=total)
            done = await store.replay(chosen, batch, progress=lambda n: bar.advance(task, n))
            return done

    done = run(body)
    if done is None:
        declined("nothing replayed")
    if dry_run:
        if as_json:
            print_json({"dry_run": True, "would_replay": done, "filter": {
                "status": chosen.status, "subscription_id": subscription,
                "event_type": event_type, "tenant_id": tenant,
                "since": None if since is None else rfc3339(since),
                "until": None if until is None else rfc3339(until)}})
        else:
            typer.echo(f"dry run: would replay {_matching(chosen, done)}; nothing changed")
    elif as_json:
        print_json({"replayed": done})
    else:
        typer.echo(f"replayed {count(done, 'delivery', 'deliveries')}")
