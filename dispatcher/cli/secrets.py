"""``secrets generate-key`` and ``secrets reseal``: signing secrets sealed at rest."""

from __future__ import annotations

import typer

from .direct import fail, load_settings, run
from .groups import DIRECT, secrets_app
from .output import count, print_json


@secrets_app.command("generate-key", help=(
    "Print a new key for DISPATCHER_SECRET_KEY.\n\n"
    "To rotate: put the new key first and the old one after it "
    "(DISPATCHER_SECRET_KEY=new,old), restart, run `dispatcher secrets reseal`, then remove "
    "the old key."))
def secrets_generate_key() -> None:
    from ..sealing import generate_key

    typer.echo(generate_key())


@secrets_app.command("reseal", help=(
    "Seal every subscription's signing secrets with the first DISPATCHER_SECRET_KEY key.\n\n"
    "Opens them with any of the keys given, so it moves secrets from an old key to a new one, "
    f"and seals secrets that were stored before a key was set.\n\n{DIRECT}"))
def secrets_reseal(
    as_json: bool = typer.Option(False, "--json", help='print {"resealed": N} on stdout'),
) -> None:
    if not load_settings().secret_key:
        fail("set DISPATCHER_SECRET_KEY first (see `dispatcher secrets generate-key`)")
    done = run(lambda store: store.reseal_secrets())
    if as_json:
        print_json({"resealed": done})
    else:
        typer.echo(f"resealed the secrets of {count(done, 'subscription', 'subscriptions')}")
