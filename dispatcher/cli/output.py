"""What the operator commands print, and how they ask before a change."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from types import ModuleType
from typing import Any, NoReturn

import typer
from rich.console import Console

from .. import tables
from ..clock import as_utc
from ..ids import TENANT_ID_RULE, is_tenant_id
from .direct import fail

DRY_RUN_HELP = "change nothing: print what would be {}, and how many"
YES = typer.Option(False, "--yes", "-y",
                   help="go ahead without asking (in a terminal it asks first; a script, "
                        "with no terminal on stdin, is never asked)")


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def api_schemas() -> ModuleType:
    """The API's response models: --json prints rows as the API shows them (same fields,
    RFC 3339 times). Imported only for --json, as loading the API takes a moment."""
    from ..api import schemas

    return schemas


def when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def console(stderr: bool = False) -> Console:
    # Piped output: no wrapping of ids at 80 columns (a terminal keeps its own width).
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() or "COLUMNS" in os.environ else 1000
    return Console(stderr=stderr, width=wide, highlight=False)


def print_rows(out: Console, columns: Sequence[tables.Column],
               rows: Sequence[Sequence[str]]) -> None:
    out.print(tables.render(columns, rows, out.width))


def count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def asks_first(yes: bool) -> bool:
    """Whether a change is confirmed first: in a terminal, unless --yes; never for a script
    (no terminal on stdin), so that scripts keep working unattended."""
    return not yes and sys.stdin.isatty()


def declined(what: str) -> NoReturn:
    typer.echo(f"not confirmed: {what}", err=True)
    raise typer.Exit(1)


def iso_time(value: str | datetime) -> datetime:
    """An ISO 8601 time, taken as UTC when it has no zone (as the API does)."""
    if isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time "
            "(e.g. 2025-01-31T09:30:00Z, 2025-01-31T09:30:00+01:00 or 2025-01-31)"
        ) from None
    return as_utc(parsed)


def time_option(help_text: str) -> Any:
    return typer.Option(None, parser=iso_time, metavar="ISO-TIME",
                        help=f"{help_text} (ISO 8601; no zone = UTC)")


def tenant_id(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """A tenant id given on the command line, checked: one line and status 2 if it cannot
    be one (the API's rule, ``ids.is_tenant_id``)."""
    if value is not None and not is_tenant_id(value):
        label = "ID" if param.param_type_name == "argument" else param.opts[0]
        fail(f"{label}: {value!r} is not a tenant id (a tenant id is "
             f"{TENANT_ID_RULE})", status=2)
    return value


def tenant_option(help_text: str) -> Any:
    return typer.Option(None, "--tenant", metavar="TENANT-ID", callback=tenant_id,
                        help=help_text)
