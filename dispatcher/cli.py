"""The ``dispatcher`` command."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn, TypeVar

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from typer.core import TyperGroup

from . import logs, tables
from .config import Settings
from .database import open_database
from .models import utcnow
from .store import DeliveryFilter, NotFound, Page, Store, rfc3339


def _plain_flags(params: Iterable[Any]) -> None:
    """Help shows flags with no value type: typer 0.29 prints ``<bool>`` beside them, as if
    ``--json true`` were the way to set one."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class Commands(TyperGroup):
    """A command group whose commands' flags, ``--help`` included, show as plain flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _plain_flags(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _plain_flags([*command.params, command.get_help_option(ctx)])
        return command


def _group(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True, cls=Commands)


app = _group("dispatcher: webhook fan-out service.")
db_app = _group("Database schema.")
app.add_typer(db_app, name="db")


def run_loop(main: Awaitable[Any]) -> Any:
    """Run ``main`` on uvloop, as uvicorn does for ``serve`` and ``api``."""
    import uvloop

    return uvloop.run(main)  # type: ignore[arg-type]


def _serve(settings: Settings, workers: bool, host: str | None, port: int | None) -> None:
    from . import migrate
    from .api import create_app
    from .service import ApiServer

    logs.configure(settings)
    _when_database_answers(settings, "migrate", lambda: migrate.upgrade(settings.database_url))
    config = uvicorn.Config(
        create_app(settings, workers=workers),
        host=host or settings.host,
        port=port if port is not None else settings.port,
        # Our handler and format (logs.configure) for uvicorn's loggers too.
        log_config=None,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)),
    )
    # uvicorn re-raises SIGTERM/SIGINT once it has shut down gracefully; a finished graceful
    # shutdown is a success, so those signals then end the process with status 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    ApiServer(config).run()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _when_database_answers(settings: Settings, what: str, action: Callable[[], T]) -> T:
    """``action()`` once the database answers, waiting up to DATABASE_WAIT_SECONDS (a
    database restarting as the process starts); then one line on stderr and exit 1."""
    from .outage import describe, is_database_away, wait_for_database

    # aiosqlite's connection thread dies noisily after a failed connect (see _run); each
    # failure is logged as one line instead.
    previous, threading.excepthook = threading.excepthook, lambda args: None
    try:
        return wait_for_database(action, settings.database_wait_seconds, what)
    except Exception as exc:
        if not is_database_away(exc):
            raise
        _fail(f"the database at {_safe_url(settings.database_url)} did not answer within "
              f"{settings.database_wait_seconds:g} s (DISPATCHER_DATABASE_WAIT_SECONDS): "
              f"{describe(exc)}")
    finally:
        threading.excepthook = previous


async def _ping(settings: Settings) -> None:
    store = Store(open_database(settings))
    try:
        await store.ping()
    finally:
        await store.db.dispose()


@app.command()
def serve(
    host: str | None = typer.Option(None, help="address to listen on [DISPATCHER_HOST]"),
    port: int | None = typer.Option(None, help="port to listen on [DISPATCHER_PORT]"),
) -> None:
    """API and delivery workers in one process; migrates the database first."""
    _serve(Settings(), True, host, port)


@app.command()
def api(
    host: str | None = typer.Option(None, help="address to listen on [DISPATCHER_HOST]"),
    port: int | None = typer.Option(None, help="port to listen on [DISPATCHER_PORT]"),
) -> None:
    """The API alone (run workers with `dispatcher worker`); migrates the database first."""
    _serve(Settings(), False, host, port)


@app.command()
def worker(
    metrics_port: int | None = typer.Option(
        None, min=1, max=65535,
        help="serve this process's Prometheus metrics at http://HOST:PORT/metrics "
             "(HOST: DISPATCHER_HOST) [DISPATCHER_METRICS_PORT]"),
) -> None:
    """Delivery workers alone: claim due deliveries from the database and send them."""
    from .service import running

    settings = Settings()
    logs.configure(settings)
    port = metrics_port if metrics_port is not None else settings.metrics_port
    _when_database_answers(settings, "start the worker", lambda: run_loop(_ping(settings)))

    async def main() -> None:
        async with running(settings, workers=True) as runtime:
            assert runtime.worker is not None and runtime.worker_task is not None
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, runtime.worker.stop)
            # Served once the worker runs: a metrics endpoint that answers means a worker.
            stop_metrics = None if port is None else _serve_metrics(settings, port)
            logging.getLogger("dispatcher").info("worker %s started", runtime.worker.owner)
            try:
                await runtime.worker_task
            finally:
                if stop_metrics is not None:
                    stop_metrics()

    run_loop(main())


def _serve_metrics(settings: Settings, port: int) -> Callable[[], None]:
    from .metrics import serve_process_metrics

    try:
        stop = serve_process_metrics(settings.host, port, settings.metrics_token)
    except OSError as exc:
        _fail(f"cannot serve metrics on {settings.host}:{port}: {exc.strerror or exc}")
    logging.getLogger("dispatcher").info("metrics at http://%s:%d/metrics", settings.host, port)
    return stop


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Run the Alembic migrations up to REVISION (default: the newest)."""
    from . import migrate

    settings = Settings()
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


# ---- operator commands: the database directly -------------------------------------------

DIRECT = (
    "Talks to the database directly (DISPATCHER_DATABASE_URL), not to the HTTP API: it needs "
    "no API key, works while the API is down, and runs wherever you have database access. "
    "It runs the same store code as the API, so the outcome is the same as the API's."
)

deliveries_app = _group(f"Look at deliveries.\n\n{DIRECT}")
subscriptions_app = _group(f"List, disable and enable subscriptions.\n\n{DIRECT}")
keys_app = _group(f"Create and list API keys.\n\n{DIRECT}")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(keys_app, name="keys")

T = TypeVar("T")


class DeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"
    held = "held"
    cancelled = "cancelled"


class ReplayStatus(StrEnum):
    failed = "failed"
    succeeded = "succeeded"


class Role(StrEnum):
    admin = "admin"
    publisher = "publisher"
    subscriber = "subscriber"


def _iso_time(value: str | datetime) -> datetime:
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
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _time_option(help_text: str) -> Any:
    return typer.Option(None, parser=_iso_time, metavar="ISO-TIME",
                        help=f"{help_text} (ISO 8601; no zone = UTC)")


def _window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise typer.BadParameter("--since must be before --until", param_hint="--since")


SUBSCRIPTION_ID = typer.Argument(..., metavar="ID", help="the subscription's id (sub_…)")


class OperatorError(Exception):
    """Ends a command with this one line on stderr and exit status 1."""


@contextmanager
def _known_subscription(sub_id: str) -> Iterator[None]:
    """The store's NotFound for ``sub_id`` as the operator's one-line error."""
    try:
        yield
    except NotFound:
        raise OperatorError(f"no subscription {sub_id!r}") from None


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(1)


def _run(body: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store on DISPATCHER_DATABASE_URL, run ``body`` with it, dispose of it.

    What an operator can fix (no database there, not migrated, an unknown id) ends the
    command with one line on stderr and exit status 1, never a traceback.
    """
    # aiosqlite's connection thread may die noisily after a failed connect; that failure is
    # reported below as one line, so its thread traceback is not printed on top.
    threading.excepthook = lambda args: None
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]).upper()
        _fail(f"bad setting DISPATCHER_{name}: {first['msg']}")
    where = _safe_url(settings.database_url)
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        _fail(f"DISPATCHER_DATABASE_URL is not a database URL: {where}")
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).exists():
        # SQLite would make an empty file: say that the service's database is elsewhere.
        _fail(f"no database file at {url.database} (set DISPATCHER_DATABASE_URL to the "
              "service's database, or create one with `dispatcher db upgrade`)")
    try:
        db = open_database(settings)
    except (ValueError, ArgumentError, ImportError) as exc:
        _fail(str(exc))

    async def main() -> T:
        store = Store(db)
        try:
            return await body(store)
        finally:
            await store.db.dispose()

    try:
        return asyncio.run(main())
    except OperatorError as exc:
        _fail(str(exc))
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        hint = ""
        if "no such table" in reason or ("relation" in reason and "does not exist" in reason):
            hint = " (is it migrated? run `dispatcher db upgrade`)"
        _fail(f"could not use the database at {where}: {reason}{hint}")


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


def _api_schemas() -> ModuleType:
    """The API's response models: --json prints rows as the API shows them (same fields,
    RFC 3339 times). Imported only for --json, as loading the API takes a moment."""
    from .api import schemas

    return schemas


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def _console(stderr: bool = False) -> Console:
    # Piped output: no wrapping of ids at 80 columns (a terminal keeps its own width).
    stream = sys.stderr if stderr else sys.stdout
    wide = None if stream.isatty() or "COLUMNS" in os.environ else 1000
    return Console(stderr=stderr, width=wide, highlight=False)


def _print_rows(console: Console, columns: Sequence[tables.Column],
                rows: Sequence[Sequence[str]]) -> None:
    console.print(tables.render(columns, rows, console.width))


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


# The filters that `deliveries list` and `replay` share.
ONLY_SUBSCRIPTION = typer.Option(None, "--subscription", metavar="ID",
                                 help="only deliveries of this subscription")
ONLY_EVENT_TYPE = typer.Option(None, "--event-type", metavar="TYPE",
                               help="only deliveries of this exact event type")
CREATED_SINCE = _time_option("only deliveries created at or after this time")
CREATED_UNTIL = _time_option("only deliveries created before this time")


DELIVERY_COLUMNS = [
    tables.Column("id"), tables.Column("status"), tables.Column("event type", whole=False),
    tables.Column("subscription id"), tables.Column("attempts"), tables.Column("last code"),
    tables.Column("created (UTC)"), tables.Column("last error", whole=False)]


@deliveries_app.command("list", help=(
    "List deliveries, newest first.\n\n"
    "Shows id, status, event type, subscription, attempts, the last status code, when it was "
    "created (UTC) and the last error, each whole: a table when the terminal is wide enough, "
    f"else one block per delivery.\n\n{DIRECT}"))
def deliveries_list(
    status: DeliveryStatus | None = typer.Option(None, help="only deliveries in this status"),
    subscription: str | None = ONLY_SUBSCRIPTION,
    event_type: str | None = ONLY_EVENT_TYPE,
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
            None, status=status.value if status else None, subscription_id=subscription,
            event_type=event_type, since=since, until=until, limit=limit)

    page = _run(body)
    if as_json:
        out = _api_schemas().DeliveryOut
        _print_json([out.model_validate(row).model_dump(mode="json") for row in page.rows])
        return
    console = _console()
    if not page.rows:
        console.print("no deliveries match")
        return
    _print_rows(console, DELIVERY_COLUMNS, [
        [row["id"], row["status"], row["event_type"], row["subscription_id"],
         str(row["attempts"]), "" if row["last_status_code"] is None
         else str(row["last_status_code"]), _when(row["created_at"]), _one_line(row["last_error"])]
        for row in page.rows])
    if page.next_cursor is not None:
        console.print(f"(the {limit} newest shown; more match: raise --limit or narrow the "
                      "filter)")


def _asks_first(yes: bool) -> bool:
    """Whether a change is confirmed first: in a terminal, unless --yes; never for a script
    (no terminal on stdin), so that scripts keep working unattended."""
    return not yes and sys.stdin.isatty()


def _declined(what: str) -> NoReturn:
    typer.echo(f"not confirmed: {what}", err=True)
    raise typer.Exit(1)


def _matching(f: DeliveryFilter, count: int) -> str:
    """``count`` deliveries of the filter ``f`` in words, e.g. "3 failed deliveries of
    subscription sub_1"."""
    words = [_count(count, f"{f.status} delivery", f"{f.status} deliveries")]
    if f.subscription_id is not None:
        words.append(f"of subscription {f.subscription_id}")
    if f.event_type is not None:
        words.append(f"of event type {f.event_type}")
    if f.since is not None:
        words.append(f"created at or after {_when(f.since)} UTC")
    if f.until is not None:
        words.append(f"{'and' if f.since else 'created'} before {_when(f.until)} UTC")
    return " ".join(words)


DRY_RUN_HELP = "change nothing: print what would be {}, and how many"
YES = typer.Option(False, "--yes", "-y",
                   help="go ahead without asking (in a terminal it asks first; a script, "
                        "with no terminal on stdin, is never asked)")


@app.command(help=(
    "Send matching deliveries again (default: the failed ones).\n\n"
    "Each match goes back to pending with a fresh retry budget, and its next attempts carry "
    "trigger `replay`; a running worker sends them. Matches of a disabled subscription "
    "become held; deleted subscriptions are left alone. Counts the matches first (--dry-run "
    "stops there), asks for confirmation in a terminal (unless --yes), and shows a progress "
    f"bar while it works through them in batches.\n\n{DIRECT}"))
def replay(
    status: ReplayStatus = typer.Option(ReplayStatus.failed,
                                        help="replay deliveries in this status"),
    subscription: str | None = ONLY_SUBSCRIPTION,
    event_type: str | None = ONLY_EVENT_TYPE,
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
    chosen = DeliveryFilter(status=status.value, subscription_id=subscription,
                            event_type=event_type, since=since, until=until)

    async def body(store: Store) -> int | None:
        if subscription is not None:
            with _known_subscription(subscription):
                await store.get_subscription(subscription, None)
        total = await store.count_replayable(chosen)
        if dry_run:
            return total
        if total and _asks_first(yes) and not typer.confirm(
                f"Replay {_matching(chosen, total)}?", default=False, err=True):
            return None
        if as_json or total == 0:
            return await store.replay(chosen, batch)
        columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=_console(stderr=True)) as bar:
            task = bar.add_task("replay", total=total)
            return await store.replay(chosen, batch,
                                      progress=lambda n: bar.advance(task, n))

    done = _run(body)
    if done is None:
        _declined("nothing replayed")
    if dry_run:
        if as_json:
            _print_json({"dry_run": True, "would_replay": done, "filter": {
                "status": chosen.status, "subscription_id": subscription,
                "event_type": event_type,
                "since": None if since is None else rfc3339(since),
                "until": None if until is None else rfc3339(until)}})
        else:
            typer.echo(f"dry run: would replay {_matching(chosen, done)}; nothing changed")
    elif as_json:
        _print_json({"replayed": done})
    else:
        typer.echo(f"replayed {_count(done, 'delivery', 'deliveries')}")


SUBSCRIPTION_COLUMNS = [
    tables.Column("id"), tables.Column("state"), tables.Column("created (UTC)"),
    tables.Column("url", whole=False), tables.Column("event types", whole=False)]


@subscriptions_app.command("list", help=(
    "List every subscription, newest first (never their signing secrets).\n\n"
    "Shows id, state (enabled, or disabled and why), when it was created (UTC), url and event "
    "types, each whole: a table when the terminal is wide enough, else one block per "
    "subscription."
    f"\n\n{DIRECT}"))
def subscriptions_list(
    as_json: bool = typer.Option(
        False, "--json",
        help="print a JSON array on stdout with the API's Subscription fields, less the "
             "signing secret (left out on purpose)"),
) -> None:
    rows = _run(lambda store: _every_page(
        lambda cursor: store.list_subscriptions(None, cursor, 500, "desc")))
    if as_json:
        out = _api_schemas().SubscriptionOut
        _print_json([out.of(row).model_dump(mode="json", exclude={"secret"}) for row in rows])
        return
    console = _console()
    if not rows:
        console.print("no subscriptions")
        return
    _print_rows(console, SUBSCRIPTION_COLUMNS, [
        [row["id"], "enabled" if row["enabled"] else f"disabled ({row['disabled_reason']})",
         _when(row["created_at"]), row["url"], ", ".join(row["event_types"])]
        for row in rows])


async def _every_page(fetch: Callable[[str | None], Awaitable[Any]]) -> list[dict[str, Any]]:
    """Every row of a store list, page after page (``fetch(cursor)`` gives one page)."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await fetch(cursor)
        found += page.rows
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _set_enabled(sub_id: str, enabled: bool) -> None:
    async def body(store: Store) -> None:
        with _known_subscription(sub_id):
            await store.update_subscription(sub_id, None, {"enabled": enabled})

    _run(body)


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
    rows = _run(lambda store: _every_page(lambda cursor: store.list_keys(cursor, 500, "desc")))
    if as_json:
        out = _api_schemas().KeyOut
        _print_json([out.model_validate(row).model_dump(mode="json") for row in rows])
        return
    console = _console()
    if not rows:
        console.print("no keys")
        return
    _print_rows(console, KEY_COLUMNS, [
        [row["id"], row["role"], _when(row["created_at"]), _one_line(row["name"])]
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
    made = _run(lambda store: store.create_key(role.value, name))
    if as_json:
        _print_json(_api_schemas().KeyCreated.model_validate(made).model_dump(mode="json"))
        return
    typer.echo(f"created {made['role']} key {made['id']} ({made['name']}); "
               "the plain key, shown only now:")
    typer.echo(made["key"])


def _pruned(counts: dict[str, int]) -> str:
    return (f"{_count(counts['deliveries'], 'delivery', 'deliveries')}, "
            f"{_count(counts['attempts'], 'attempt', 'attempts')} and "
            f"{_count(counts['events'], 'event', 'events')}")


@app.command(help=(
    "Delete old finished deliveries, their attempts, and events left with none.\n\n"
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
        help='print {"deliveries", "attempts", "events", "older_than"} on stdout; with '
             '--dry-run {"dry_run": true, "would_delete": {"deliveries", "attempts", '
             '"events"}, "older_than"}'),
) -> None:
    kept = "" if include_failed else "; failed ones kept (--include-failed deletes them)"

    async def body(store: Store) -> tuple[datetime, dict[str, int] | None]:
        age = days if days is not None else store.db.settings.retention_days
        older_than = utcnow() - timedelta(days=age)
        asks = not dry_run and _asks_first(yes)
        if dry_run or asks:
            counts = await store.count_prunable(older_than, include_failed)
            if dry_run:
                return older_than, counts
            if any(counts.values()) and not typer.confirm(
                    f"Delete {_pruned(counts)} (finished, created before {_when(older_than)} "
                    f"UTC){kept}?", default=False, err=True):
                return older_than, None
        if as_json:
            return older_than, await store.prune(older_than, include_failed)
        with Progress(SpinnerColumn(), TextColumn("pruning: {task.completed} deliveries"),
                      console=_console(stderr=True), transient=True) as bar:
            task = bar.add_task("prune", total=None)
            counts = await store.prune(older_than, include_failed,
                                       progress=lambda n: bar.advance(task, n))
        return older_than, counts

    older_than, counts = _run(body)
    if counts is None:
        _declined("nothing deleted")
    if dry_run:
        if as_json:
            _print_json({"dry_run": True, "would_delete": counts,
                         "older_than": rfc3339(older_than)})
        else:
            typer.echo(f"dry run: would delete {_pruned(counts)} (finished, created before "
                       f"{_when(older_than)} UTC){kept}; nothing changed")
    elif as_json:
        _print_json(counts | {"older_than": rfc3339(older_than)})
    else:
        typer.echo(f"pruned {_pruned(counts)} (finished, created before {_when(older_than)} "
                   f"UTC){kept}")


# ---- signing secrets at rest --------------------------------------------------------------

secrets_app = _group("Seal subscription signing secrets at rest (DISPATCHER_SECRET_KEY).")
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("generate-key", help=(
    "Print a new key for DISPATCHER_SECRET_KEY.\n\n"
    "To rotate: put the new key first and the old one after it "
    "(DISPATCHER_SECRET_KEY=new,old), restart, run `dispatcher secrets reseal`, then remove "
    "the old key."))
def secrets_generate_key() -> None:
    from .sealing import generate_key

    typer.echo(generate_key())


@secrets_app.command("reseal", help=(
    "Seal every subscription's signing secrets with the first DISPATCHER_SECRET_KEY key.\n\n"
    "Opens them with any of the keys given, so it moves secrets from an old key to a new one, "
    f"and seals secrets that were stored before a key was set.\n\n{DIRECT}"))
def secrets_reseal(
    as_json: bool = typer.Option(False, "--json", help='print {"resealed": N} on stdout'),
) -> None:
    if not Settings().secret_key:
        _fail("set DISPATCHER_SECRET_KEY first (see `dispatcher secrets generate-key`)")
    done = _run(lambda store: store.reseal_secrets())
    if as_json:
        _print_json({"resealed": done})
    else:
        typer.echo(f"resealed the secrets of {_count(done, 'subscription', 'subscriptions')}")


# Last, so that `python -m dispatcher.cli` knows every command defined above.
if __name__ == "__main__":
    app()
