"""``keys list`` and ``keys create``."""

from __future__ import annotations

from typing import Any

import typer

from .. import tables
from ..store import Store
from ..vocabulary import Role
from .direct import every_page, fail, known_tenant, run
from .groups import DIRECT, keys_app
from .output import api_schemas, console, one_line, print_json, print_rows, tenant_option, when

KEY_COLUMNS = [tables.Column("id"), tables.Column("role"), tables.Column("tenant"),
               tables.Column("created (UTC)"), tables.Column("name", whole=False)]


@keys_app.command("list", help=(
    "List the API keys in use, newest first (never the keys themselves: only their hashes "
    "are stored).\n\n"
    "Shows id, role, tenant (of a scoped key), when it was created (UTC) and name, each "
    "whole: a table when the terminal is wide enough, else one block per key.\n\n"
    f"{DIRECT}"))
def keys_list(
    as_json: bool = typer.Option(
        False, "--json",
        help='print a JSON array on stdout of {"id", "role", "name", "tenant_id", "created_at"}, '
             "as the API does"),
) -> None:
    rows = run(lambda store: every_page(lambda cursor: store.list_keys(cursor, 500, "desc")))
    if as_json:
        out = api_schemas().KeyOut
        print_json([out.model_validate(row).model_dump(mode="json") for row in rows])
        return
    screen = console()
    if not rows:
        screen.print("no keys")
        return
    print_rows(screen, KEY_COLUMNS, [
        [row["id"], row["role"], row["tenant_id"] or "", when(row["created_at"]),
         one_line(row["name"])]
        for row in rows])


def _key_name(value: str) -> str:
    if not value.strip() or len(value) > 200 or "\x00" in value:
        raise typer.BadParameter("give 1 to 200 characters, no NUL")
    return value


@keys_app.command("create", help=(
    "Create an API key and print it (shown only now).\n\n"
    "The database keeps only a hash of the key: store the printed key where it is needed. "
    "A subscriber key made with --tenant is scoped to that tenant: it manages every "
    f"subscription of the tenant, with their deliveries, and sees nothing else.\n\n{DIRECT}"))
def keys_create(
    role: Role = typer.Option(..., help="what the key may do (see the API's roles)"),
    name: str = typer.Option(..., callback=_key_name,
                             help="who or what uses the key, e.g. billing-service"),
    tenant: str | None = tenant_option(
        "scope the key to this tenant (an existing one; subscriber keys only)"),
    as_json: bool = typer.Option(
        False, "--json",
        help='print {"id", "role", "name", "key", "tenant_id", "created_at"} on stdout, as the '
             "API does"),
) -> None:
    if tenant is not None and role != Role.SUBSCRIBER:
        fail(f"--tenant: only a subscriber key can be scoped to a tenant, not a {role} key",
             status=2)

    async def body(store: Store) -> dict[str, Any]:
        with known_tenant():
            return await store.create_key(role, name, tenant_id=tenant)

    made = run(body)
    if as_json:
        print_json(api_schemas().KeyCreated.model_validate(made).model_dump(mode="json"))
        return
    scoped = "" if tenant is None else f" scoped to tenant {tenant}"
    typer.echo(f"created {made['role']} key {made['id']} ({made['name']}){scoped}; "
               "the plain key, shown only now:")
    typer.echo(made["key"])
