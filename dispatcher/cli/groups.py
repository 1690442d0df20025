"""The ``dispatcher`` command and its groups: plain flags in help, and what every operator
command states about where it works."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import typer
from typer.core import TyperGroup


def _plain_flags(params: Iterable[Any]) -> None:
    """Help shows flags with no value type: typer 0.29 prints ``<bool>`` beside them, as if
    ``--json true`` were the way to set one."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class Commands(TyperGroup):
    """A command group whose commands' flags, ``--help`` included, show as plain flags."""

    # Any: typer 0.29 vendors click privately (typer._click), so its types are not ours.
    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _plain_flags(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_flags([*command.params, command.get_help_option(ctx)])
        return command


def group(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True, cls=Commands)


DIRECT = (
    "Talks to the database directly (DISPATCHER_DATABASE_URL), not to the HTTP API: it needs "
    "no API key, works while the API is down, and runs wherever you have database access. "
    "It runs the same store code as the API, so the outcome is the same as the API's."
)

app = group("dispatcher: webhook fan-out service.")
db_app = group("Database schema.")
deliveries_app = group(f"Look at deliveries.\n\n{DIRECT}")
subscriptions_app = group(f"List, disable and enable subscriptions.\n\n{DIRECT}")
keys_app = group(f"Create and list API keys.\n\n{DIRECT}")
tenants_app = group(f"List, put and delete tenants (your customers).\n\n{DIRECT}")
secrets_app = group("Seal subscription signing secrets at rest (DISPATCHER_SECRET_KEY).")
app.add_typer(db_app, name="db")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")
app.add_typer(secrets_app, name="secrets")
