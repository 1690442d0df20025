"""Operator commands run the store on DISPATCHER_DATABASE_URL directly; what an operator can
fix ends the command with one line on stderr and exit status 1, never a traceback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ..config import Settings
from ..database import open_database
from ..store import NotFound, Store, TenantNotFound

T = TypeVar("T")


class OperatorError(Exception):
    """Ends a command with this one line on stderr and exit status 1."""


def fail(message: str, status: int = 1) -> NoReturn:
    """One line on stderr, then exit: 1 for what the operator can fix, 2 for input that can
    never work (click's status for usage errors)."""
    typer.secho(f"error: {message}", err=True, fg="red")
    raise typer.Exit(status)


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1]


def is_aiosqlite_noise(args: threading.ExceptHookArgs) -> bool:
    """aiosqlite's connection thread dying after a failed connect: it hands its answer to an
    event loop that ``asyncio.run`` has closed by then (RuntimeError raised in aiosqlite)."""
    if not issubclass(args.exc_type, RuntimeError):
        return False
    frame = args.exc_traceback
    while frame is not None:
        if str(frame.tb_frame.f_globals.get("__name__", "")).startswith("aiosqlite"):
            return True
        frame = frame.tb_next
    return False


def quiet_aiosqlite_threads() -> Callable[[], None]:
    """Hide only aiosqlite's thread traceback (the failure is reported as one line); any other
    thread's exception is still printed. Returns the function that restores the hook."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not is_aiosqlite_noise(args):
            previous(args)

    threading.excepthook = hook

    def restore() -> None:
        threading.excepthook = previous

    return restore


@contextmanager
def known_subscription(sub_id: str) -> Iterator[None]:
    """The store's NotFound for ``sub_id`` as the operator's one-line error."""
    try:
        yield
    except NotFound:
        raise OperatorError(f"no subscription {sub_id!r}") from None


@contextmanager
def known_tenant() -> Iterator[None]:
    """The store's TenantNotFound as the operator's one-line error."""
    try:
        yield
    except TenantNotFound as exc:
        raise OperatorError(f"no tenant {exc.tenant_id!r}") from None


def load_settings() -> Settings:
    """The settings from the environment; a bad one ends the command with a line naming it
    (no traceback)."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]).upper()
        message = str(first["msg"]).removeprefix("Value error, ")
        fail(f"bad setting DISPATCHER_{name}: {message}")


def run(body: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store on DISPATCHER_DATABASE_URL, run ``body`` with it, dispose of it."""
    # Left in place: the connection thread may die after this returns, as the process ends.
    quiet_aiosqlite_threads()
    settings = load_settings()
    where = safe_url(settings.database_url)
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        fail(f"DISPATCHER_DATABASE_URL is not a database URL: {where}")
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).exists():
        # SQLite would make an empty file: say that the service's database is elsewhere.
        fail(f"no database file at {url.database} (set DISPATCHER_DATABASE_URL to the "
             "service's database, or create one with `dispatcher db upgrade`)")
    try:
        db = open_database(settings)
    except (ValueError, ArgumentError, ImportError) as exc:
        fail(str(exc))

    async def main() -> T:
        store = Store(db)
        try:
            return await body(store)
        finally:
            await store.db.dispose()

    try:
        return asyncio.run(main())
    except OperatorError as exc:
        fail(str(exc))
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        hint = ""
        if "no such table" in reason or ("relation" in reason and "does not exist" in reason):
            hint = " (is it migrated? run `dispatcher db upgrade`)"
        fail(f"could not use the database at {where}: {reason}{hint}")


async def every_page(fetch: Callable[[str | None], Awaitable[Any]]) -> list[dict[str, Any]]:
    """Every row of a store list, page after page (``fetch(cursor)`` gives one page)."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await fetch(cursor)
        found += page.rows
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor
