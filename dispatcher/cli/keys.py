"""``keys list`` and ``keys create``."""

from __future__ import annotations

import typer

from .. import tables
from ..vocabulary import Role
from .direct import every_page, run
from .groups import DIRECT, keys_app
from .output import api_schemas, console, one_line, print_json, print_rows, when

KEY_COLUMNS = [tables.Column("id"), tables.Column("role"), tables.Column("created (UTC)"),
               tables.Column("name", whole=False)]


@keys_app.command("list", help=(
    "List the API keys in use, newest first (never the keys themselves: only their hashes "
    "are stored).\n\n"
    "Shows id, role, when it was created (UTC) and name, each whole: a table when the "
    f"terminal is wide enough, else one block per key.\n\n{DIRECT}"))
def keys_list(
    as_json: bool = typer.Option(
        False, "--json",
        help='print a JSON array on stdout of {"id", "role", "name", "created_at"}, as the API '
             "does"),
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
        [row["id"], row["role"], when(row["created_at"]), one_line(row["name"])]
        for row in rows])


def _key_name(value: str) -> str:
    if not value.strip() or len(value) > 200 or "\x00" in value:
        raise typer.BadParameter("give 1 to 200 characters, no NUL")
    return value


@keys_app.command("create", help=(
    "Create an API key and print it (shown only now).\n\n"
    "The database keeps only a hash of the key: store the printed key where it is needed."
    f"\n\n{DIRECT}"))
def keys_create(
    role: Role = typer.Option(..., help="what the key may do (see the API's roles)"),
    name: str = typer.Option(..., callback=_key_name,
                             help="who or what uses the key, e.g. billing-service"),
    as_json: bool = typer.Option(
        False, "--json",
        help='print {"id", "role", "name", "key", "created_at"} on stdout, as the API does'),
) -> None:
    made = run(lambda store: store.create_key(role, name))
    if as_json:
        print_json(api_schemas().KeyCreated.model_validate(made).model_dump(mode="json"))
        return
    typer.echo(f"created {made['role']} key {made['id']} ({made['name']}); "
               "the plain key, shown only now:")
    typer.echo(made["key"])
