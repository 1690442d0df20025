"""Which errors mean "the database is away" (503, back off, wait) and which are our own."""

from __future__ import annotations

import errno
import sqlite3

import asyncpg
import pytest
import sqlalchemy as sa
from asyncpg import exceptions as pg
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import create_async_engine

from dispatcher.outage import describe, is_database_away

from .databases import run_async

ASYNCPG = PGDialect_asyncpg.import_dbapi()


def wrapped(driver_error: Exception, invalidated: bool = False) -> DBAPIError:
    """``driver_error`` as SQLAlchemy's asyncpg dialect hands it on: translated to the
    adapter's DB-API class (the asyncpg error its cause and ``.orig``), then wrapped in
    SQLAlchemy's matching ``DBAPIError`` subclass."""
    translate = ASYNCPG._asyncpg_error_translate
    kind = next(translate[k] for k in type(driver_error).__mro__ if k in translate)
    adapted = kind(driver_error.args[0], driver_error)
    adapted.__cause__ = driver_error
    return DBAPIError.instance("SELECT 1", None, adapted, ASYNCPG.Error,
                               connection_invalidated=invalidated)


def caused_by(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


def sqlite_error(make_it: str) -> sqlite3.Error:
    """A real error from SQLite."""
    try:
        if make_it == "cannot open":
            sqlite3.connect("/nonexistent-folder/x.db").execute("SELECT 1")
        elif make_it == "locked":
            import tempfile

            with tempfile.TemporaryDirectory() as folder:
                path = f"{folder}/x.db"
                holder = sqlite3.connect(path, isolation_level=None)
                holder.execute("CREATE TABLE t (n)")
                holder.execute("BEGIN IMMEDIATE")
                try:
                    other = sqlite3.connect(path, timeout=0, isolation_level=None)
                    other.execute("INSERT INTO t VALUES (1)")
                finally:
                    holder.close()
        elif make_it == "syntax":
            sqlite3.connect(":memory:").execute("SELEC 1")
        elif make_it == "no table":
            sqlite3.connect(":memory:").execute("SELECT * FROM nope")
        elif make_it == "closed":
            conn = sqlite3.connect(":memory:")
            conn.close()
            conn.execute("SELECT 1")
    except sqlite3.Error as exc:
        return exc
    raise AssertionError(f"SQLite raised nothing for {make_it}")


def sqlite_wrapped(error: sqlite3.Error) -> DBAPIError:
    return DBAPIError.instance("SELECT 1", None, error, sqlite3.Error)


def _during(outage: BaseException) -> Exception:
    try:
        raise outage
    except BaseException:
        try:
            raise RuntimeError("a bug in the handler")
        except RuntimeError as exc:
            return exc
    raise AssertionError("unreachable")


SHUTTING_DOWN = pg.CannotConnectNowError("the database system is shutting down")
STARTING_UP = pg.CannotConnectNowError("the database system is starting up")
TERMINATED = pg.AdminShutdownError("terminating connection due to administrator command")
CLOSED_MID_QUERY = caused_by(
    pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    caused_by(pg.AdminShutdownError("terminating connection due to administrator command"),
              ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")))

AWAY = {
    "CannotConnectNowError, shutting down (57P03)": SHUTTING_DOWN,
    "CannotConnectNowError, shutting down, wrapped": wrapped(SHUTTING_DOWN),
    "CannotConnectNowError, starting up, wrapped": wrapped(STARTING_UP),
    "ConnectionDoesNotExistError": pg.ConnectionDoesNotExistError("connection was closed"),
    "ConnectionDoesNotExistError, wrapped, connection invalidated":
        wrapped(CLOSED_MID_QUERY, invalidated=True),
    "ConnectionDoesNotExistError, wrapped, not invalidated": wrapped(CLOSED_MID_QUERY),
    "ConnectionFailureError, wrapped": wrapped(pg.ConnectionFailureError("lost")),
    "PostgresConnectionError, wrapped": wrapped(pg.PostgresConnectionError("no connection")),
    "ClientCannotConnectError, wrapped": wrapped(pg.ClientCannotConnectError("cannot")),
    "TooManyConnectionsError (53300), wrapped":
        wrapped(pg.TooManyConnectionsError("sorry, too many clients already")),
    "AdminShutdownError (57P01)": TERMINATED,
    "AdminShutdownError (57P01), wrapped": wrapped(TERMINATED),
    "CrashShutdownError (57P02), wrapped": wrapped(pg.CrashShutdownError("crash")),
    "read-only transaction after failover (25006), wrapped": wrapped(
        pg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction")),
    "asyncpg InterfaceError: connection is closed": asyncpg.InterfaceError(
        "cannot call Connection.fetch(): connection is closed"),
    "asyncpg InterfaceError: connection is closed, wrapped, invalidated": wrapped(
        asyncpg.InterfaceError("connection is closed"), invalidated=True),
    "ConnectionRefusedError": ConnectionRefusedError(
        errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
    "ConnectionResetError": ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    "OSError: no route to host": OSError(errno.EHOSTUNREACH, "No route to host"),
    "TimeoutError (connect timed out)": TimeoutError(),
    "SQLAlchemy pool TimeoutError": PoolTimeoutError(
        "QueuePool limit of size 10 overflow 10 reached, connection timed out"),
    "SQLite cannot open, wrapped": sqlite_wrapped(sqlite_error("cannot open")),
    "SQLite database is locked, wrapped": sqlite_wrapped(sqlite_error("locked")),
    "SQLite database is locked": sqlite_error("locked"),
}

NOT_AWAY = {
    "unique violation (23505), wrapped":
        wrapped(pg.UniqueViolationError('duplicate key value violates unique constraint "pk"')),
    "not-null violation (23502), wrapped": wrapped(pg.NotNullViolationError("null value")),
    "syntax error (42601), wrapped": wrapped(pg.PostgresSyntaxError('syntax error at "SELEC"')),
    "undefined table (42P01), wrapped": wrapped(pg.UndefinedTableError("relation does not")),
    "data error (22P02), wrapped": wrapped(pg.InvalidTextRepresentationError("invalid input")),
    "query cancelled (57014), wrapped": wrapped(pg.QueryCanceledError("canceling statement")),
    "asyncpg InterfaceError: another operation is in progress": asyncpg.InterfaceError(
        "cannot perform operation: another operation is in progress"),
    "SQLite syntax error, wrapped": sqlite_wrapped(sqlite_error("syntax")),
    "SQLite no such table, wrapped": sqlite_wrapped(sqlite_error("no table")),
    "SQLite closed connection (a bug of ours)": sqlite_wrapped(sqlite_error("closed")),
    "ValueError": ValueError("bad"),
    "RuntimeError": RuntimeError("boom"),
    "KeyError": KeyError("x"),
    # An error of our own raised while handling an outage is still our own.
    "RuntimeError raised while handling a reset": _during(ConnectionResetError()),
}


@pytest.mark.parametrize("error", AWAY.values(), ids=AWAY.keys())
def test_database_away(error):
    assert is_database_away(error)


@pytest.mark.parametrize("error", NOT_AWAY.values(), ids=NOT_AWAY.keys())
def test_not_database_away(error):
    assert not is_database_away(error)


def test_the_shape_of_the_wrapped_errors():
    """The table above builds the errors as SQLAlchemy does: the real classes appear."""
    assert type(wrapped(SHUTTING_DOWN)) is DBAPIError
    assert isinstance(wrapped(SHUTTING_DOWN).orig.__cause__, pg.CannotConnectNowError)
    assert isinstance(NOT_AWAY["unique violation (23505), wrapped"], IntegrityError)
    assert isinstance(NOT_AWAY["syntax error (42601), wrapped"], ProgrammingError)
    assert sqlite_error("locked").sqlite_errorname == "SQLITE_BUSY"


def test_describe_names_the_driver_error_in_one_line():
    assert describe(wrapped(SHUTTING_DOWN)) == (
        "CannotConnectNowError: the database system is shutting down")
    assert describe(ConnectionRefusedError(111, "Connect call\nfailed")) == (
        "ConnectionRefusedError: [Errno 111] Connect call failed")


def _real_error(url: str, statements: list[str]) -> Exception:
    async def run() -> Exception:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                for statement in statements:
                    await conn.execute(sa.text(statement))
        except Exception as exc:
            return exc
        finally:
            await engine.dispose()
        raise AssertionError(f"no error from {statements}")

    return run_async(run())


@pytest.mark.parametrize("statements", [
    ["CREATE TEMPORARY TABLE t (id INTEGER PRIMARY KEY)", "INSERT INTO t VALUES (1)",
     "INSERT INTO t VALUES (1)"],
    ["SELEC 1"],
    ["SELECT * FROM no_such_table"],
], ids=["integrity error", "syntax error", "no such table"])
def test_real_errors_of_our_own_are_not_the_database_away(database_url, statements):
    error = _real_error(database_url, statements)
    assert isinstance(error, DBAPIError)
    assert not is_database_away(error)
