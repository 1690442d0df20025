"""``tenants list``, ``put`` and ``delete``; ``portal-link`` and ``revoke-links``."""

from __future__ import annotations

import json
from typing import Any

import typer

from .. import tables
from ..store import Store
from ..tenant_limits import MAX_METADATA_BYTES, metadata_size
from .direct import OperatorError, every_page, fail, known_tenant, load_settings, run
from .groups import DIRECT, tenants_app
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
    tenant_id,
    when,
)

TENANT_ID = typer.Argument(..., metavar="ID", callback=tenant_id,
                           help="the tenant's id: yours, e.g. your customer id (acme-corp)")
TENANT_COLUMNS = [tables.Column("id"), tables.Column("created (UTC)"),
                  tables.Column("name", whole=False)]


@tenants_app.command("list", help=(
    "List every tenant, newest first.\n\n"
    "Shows id, when it was created (UTC) and name, each whole: a table when the terminal is "
    f"wide enough, else one block per tenant.\n\n{DIRECT}"))
def tenants_list(
    as_json: bool = typer.Option(
        False, "--json",
        help='print a JSON array on stdout of {"id", "name", "metadata", "created_at", '
             '"updated_at"}, as the API does'),
) -> None:
    rows = run(lambda store: every_page(lambda cursor: store.list_tenants(cursor, 500, "desc")))
    if as_json:
        out = api_schemas().TenantOut
        print_json([out.model_validate(row).model_dump(mode="json") for row in rows])
        return
    screen = console()
    if not rows:
        screen.print("no tenants")
        return
    print_rows(screen, TENANT_COLUMNS, [
        [row["id"], when(row["created_at"]), one_line(row["name"])] for row in rows])


def _name(value: str | None) -> str | None:
    if value is not None and (not value.strip() or len(value) > 200 or "\x00" in value):
        fail("--name: give 1 to 200 characters, no NUL", status=2)
    return value


def _not_json(word: str) -> Any:
    """NaN and Infinity: Python's json reads them, JSON (and PostgreSQL) has no such thing."""
    raise ValueError(f"{word} is not a JSON value")


def _metadata(value: str | None) -> dict[str, Any]:
    """--metadata as the API takes it: a JSON object of at most MAX_METADATA_BYTES."""
    if value is None:
        return {}
    try:
        parsed = json.loads(value, parse_constant=_not_json)
    except ValueError as exc:
        fail(f"--metadata is not JSON: {exc}", status=2)
    if not isinstance(parsed, dict):
        fail(f"--metadata must be a JSON object, not {type(parsed).__name__} "
             "(e.g. '{\"plan\": \"pro\"}')", status=2)
    size = metadata_size(parsed)
    if size > MAX_METADATA_BYTES:
        fail(f"--metadata is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are kept",
             status=2)
    return parsed


@tenants_app.command("put", help=(
    "Create a tenant with your own id for it, or replace its name and metadata.\n\n"
    "As the API's PUT: what is left out takes its default (no name, metadata {}), so give "
    "both to keep both. Says whether the tenant was created or updated, then shows it."
    f"\n\n{DIRECT}"))
def tenants_put(
    tenant: str = TENANT_ID,
    name: str | None = typer.Option(None, metavar="NAME",
                                    help="a name for people, 1 to 200 characters"),
    metadata: str | None = typer.Option(
        None, metavar="JSON",
        help=f"your own data about the tenant: a JSON object of at most "
             f"{MAX_METADATA_BYTES // 1024} KiB, e.g. '{{\"plan\": \"pro\"}}'"),
    as_json: bool = typer.Option(
        False, "--json",
        help='print {"id", "name", "metadata", "created_at", "updated_at"} on stdout, as the '
             "API does"),
) -> None:
    chosen_name, chosen_metadata = _name(name), _metadata(metadata)
    row, created = run(lambda store: store.put_tenant(tenant, chosen_name, chosen_metadata))
    if as_json:
        print_json(api_schemas().TenantOut.model_validate(row).model_dump(mode="json"))
        return
    typer.echo(f"{'created' if created else 'updated'} tenant {row['id']}")
    typer.echo(f"  name:     {'' if row['name'] is None else row['name']}")
    typer.echo(f"  metadata: {json.dumps(row['metadata'], ensure_ascii=False)}")
    typer.echo(f"  created:  {when(row['created_at'])} UTC")
    typer.echo(f"  updated:  {when(row['updated_at'])} UTC")


def _holdings(counts: dict[str, int]) -> str:
    return (f"{count(counts['subscriptions'], 'subscription', 'subscriptions')} (their "
            f"{count(counts['deliveries'], 'open delivery', 'open deliveries')} cancelled) "
            f"and {count(counts['keys'], 'key', 'keys')}")


@tenants_app.command("delete", help=(
    "Delete a tenant, its subscriptions (their open deliveries become cancelled) and its "
    "scoped keys (refused from their next request on).\n\n"
    "Its events and deliveries stay, as history, until pruned. Counts what would go first "
    f"(--dry-run stops there) and asks for confirmation in a terminal (unless --yes).\n\n"
    f"{DIRECT}"))
def tenants_delete(
    tenant: str = TENANT_ID,
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP.format("deleted")),
    yes: bool = YES,
    as_json: bool = typer.Option(
        False, "--json",
        help='print {"deleted", "subscriptions", "deliveries", "keys"} on stdout (deliveries: '
             'the open ones cancelled); with --dry-run {"dry_run": true, "would_delete", '
             '"subscriptions", "deliveries", "keys"}'),
) -> None:
    async def body(store: Store) -> dict[str, int] | None:
        with known_tenant():
            if dry_run or asks_first(yes):
                counts: dict[str, int] = await store.count_tenant_holdings(tenant)
                if dry_run:
                    return counts
                if not typer.confirm(f"Delete tenant {tenant}, {_holdings(counts)}?",
                                     default=False, err=True):
                    return None
            done: dict[str, int] = await store.delete_tenant(tenant)
            return done

    counts = run(body)
    if counts is None:
        declined("nothing deleted")
    if dry_run:
        if as_json:
            print_json({"dry_run": True, "would_delete": tenant} | counts)
        else:
            typer.echo(f"dry run: would delete tenant {tenant}, {_holdings(counts)}; "
                       "nothing changed")
    elif as_json:
        print_json({"deleted": tenant} | counts)
    else:
        typer.echo(f"deleted tenant {tenant}, {_holdings(counts)}")


PORTAL_MIN_SECONDS, PORTAL_MAX_SECONDS = 60, 604_800  # as the API's (schemas.tenants)


@tenants_app.command("portal-link", help=(
    "Make a link that opens the tenant's portal in a browser, where your customer manages "
    "its own endpoints and sees and retries its deliveries.\n\n"
    "Prints the URL (shown only now: give it to the customer) and when it expires. Its host "
    "is DISPATCHER_PUBLIC_URL, or else http://DISPATCHER_HOST:DISPATCHER_PORT, as the API's. "
    "It works until it expires, is revoked (tenants revoke-links) or the tenant is deleted."
    f"\n\n{DIRECT}"))
def tenants_portal_link(
    tenant: str = TENANT_ID,
    expires_in: int = typer.Option(
        3600, "--expires-in", metavar="SECONDS",
        help=f"how long the link works, from now: {PORTAL_MIN_SECONDS} to "
             f"{PORTAL_MAX_SECONDS} seconds (a week)"),
    read_only: bool = typer.Option(
        False, "--read-only", help="the portal shows the tenant's endpoints and deliveries "
                                   "but changes nothing"),
    as_json: bool = typer.Option(
        False, "--json", help='print {"url", "expires_at", "read_only"} on stdout, as the API '
                              "does"),
) -> None:
    if not PORTAL_MIN_SECONDS <= expires_in <= PORTAL_MAX_SECONDS:
        fail(f"--expires-in: give {PORTAL_MIN_SECONDS} to {PORTAL_MAX_SECONDS} seconds",
             status=2)

    async def body(store: Store) -> tuple[Any, str, str]:
        settings = load_settings()  # run() has checked them
        if not settings.portal_enabled:
            raise OperatorError("the portal is turned off here "
                                "(DISPATCHER_PORTAL_ENABLED=false): it makes no links")
        with known_tenant():
            link, token = await store.create_portal_link(tenant, expires_in, read_only)
        return link, token, settings.public_origin()

    link, token, origin = run(body)
    url = f"{origin}/portal#{token}"
    if as_json:
        print_json(api_schemas().PortalLinkOut(
            url=url, expires_at=link.expires_at, read_only=link.read_only).model_dump(
            mode="json"))
        return
    typer.echo(url)
    typer.echo(f"  tenant:    {tenant}")
    typer.echo(f"  expires:   {when(link.expires_at)} UTC")
    typer.echo(f"  read-only: {'yes' if link.read_only else 'no'}")


@tenants_app.command("revoke-links", help=(
    "Revoke every portal link of the tenant made so far: each stops working, and every "
    "portal session opened with one ends at its next request. Links made afterwards work."
    f"\n\n{DIRECT}"))
def tenants_revoke_links(
    tenant: str = TENANT_ID,
    as_json: bool = typer.Option(
        False, "--json", help='print {"tenant_id", "revoked"} on stdout (revoked: how many '
                              "links were not revoked yet)"),
) -> None:
    async def body(store: Store) -> int:
        with known_tenant():
            revoked: int = await store.revoke_portal_links(tenant)
            return revoked

    revoked = run(body)
    if as_json:
        print_json({"tenant_id": tenant, "revoked": revoked})
    else:
        typer.echo(f"revoked {count(revoked, 'portal link', 'portal links')} of tenant "
                   f"{tenant}; their sessions end at their next request")
