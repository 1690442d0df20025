"""``prune``: old finished deliveries, their attempts, and events left with none."""

from __future__ import annotations

from datetime import datetime, timedelta

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn

from ..clock import rfc3339, utcnow
from ..store import Store
from .direct import run
from .groups import DIRECT, app
from .output import DRY_RUN_HELP, YES, asks_first, console, count, declined, print_json, when


def _pruned(counts: dict[str, int]) -> str:
    links = counts.get("portal_links", 0)
    return (f"{count(counts['deliveries'], 'delivery', 'deliveries')}, "
            f"{count(counts['attempts'], 'attempt', 'attempts')}"
            f"{', ' if links else ' and '}{count(counts['events'], 'event', 'events')}"
            + (f" and {count(links, 'ended portal link', 'ended portal links')}"
               if links else ""))


@app.command(help=(
    "Delete old finished deliveries, their attempts, events left with none, and portal "
    "links that ended (expired or revoked) as long ago.\n\n"
    "Finished: succeeded or cancelled, and failed with --include-failed; old: created more "
    "than --days ago. Counts them first and asks for confirmation in a terminal (unless "
    f"--yes); --dry-run only counts. Works in batches.\n\n{DIRECT}"))
def prune(
    days: float | None = typer.Option(
        None, min=0, help="age in days past which finished deliveries go "
                          "(default: DISPATCHER_RETENTION_DAYS, 30)"),
    include_failed: bool = typer.Option(False, "--include-failed",
                                         help="delete failed deliveries too"),
    dry_run: bool = typer.Option(False, "--dry-run", help=DRY_RUN_HELP.format("deleted")),
    yes: bool = YES,
    as_json: bool = typer.Option(
        False, "--json",
        help='print {"deliveries", "attempts", "events", "portal_links", "older_than"} on '
             'stdout; with --dry-run {"dry_run": true, "would_delete": {"deliveries", '
             '"attempts", "events", "portal_links"}, "older_than"}'),
) -> None:
    kept = "" if include_failed else "; failed ones kept (--include-failed deletes them)"

    async def body(store: Store) -> tuple[datetime, dict[str, int] | None]:
        age = days if days is not None else store.db.settings.retention_days
        older_than = utcnow() - timedelta(days=age)
        asks = not dry_run and asks_first(yes)
        if dry_run or asks:
            counts: dict[str, int] = await store.count_prunable(older_than, include_failed)
            if dry_run:
                return older_than, counts
            if any(counts.values()) and not typer.confirm(
                    f"Delete {_pruned(counts)} (finished, created before {when(older_than)} "
                    f"UTC){kept}?", default=False, err=True):
                return older_than, None
        if as_json:
            return older_than, await store.prune(older_than, include_failed)
        with Progress(SpinnerColumn(), TextColumn("pruning: {task.completed} deliveries"),
                      console=console(stderr=True), transient=True) as bar:
            task = bar.add_task("prune", total=None)
            counts = await store.prune(older_than, include_failed,
                                       progress=lambda n: bar.advance(task, n))
        return older_than, counts

    older_than, counts = run(body)
    if counts is None:
        declined("nothing deleted")
    if dry_run:
        if as_json:
            print_json({"dry_run": True, "would_delete": counts,
                        "older_than": rfc3339(older_than)})
        else:
            typer.echo(f"dry run: would delete {_pruned(counts)} (finished, created before "
                       f"{when(older_than)} UTC){kept}; nothing changed")
    elif as_json:
        print_json(counts | {"older_than": rfc3339(older_than)})
    else:
        typer.echo(f"pruned {_pruned(counts)} (finished, created before {when(older_than)} "
                   f"UTC){kept}")
