"""The database being away: telling it from other errors, and waiting it out at start-up.

Away means the database cannot answer just now and will again: refused or reset
connections, a server shutting down or starting up, an administrator's or a crash's
termination, too many connections, a read-only server after a failover, no pooled
connection in time. Then the API answers 503 ``database_unavailable``, workers back off
and keep going, and a starting process waits (``wait_for_database``). Anything else (a
constraint violated, a bad statement) is a fault of ours and stays one.

The errors come in three forms: SQLAlchemy's (``DBAPIError`` with the driver's error in
``.orig``), the driver's own (asyncpg raises some connect errors unwrapped), and plain
socket errors; so the whole chain of causes is looked at.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import TypeVar

import asyncpg
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_before_delay,
    wait_exponential,
)

log = logging.getLogger("dispatcher.database")

T = TypeVar("T")

# PostgreSQL's SQLSTATEs for "not now": the whole 08 class (connection exception), then
# one code each.
AWAY_SQLSTATE_CLASSES = ("08",)
AWAY_SQLSTATES = frozenset({
    "57P01",  # admin_shutdown: terminated by a shutdown or pg_terminate_backend
    "57P02",  # crash_shutdown: another backend crashed, the server restarts
    "57P03",  # cannot_connect_now: shutting down, starting up, in recovery
    "53300",  # too_many_connections
    "25006",  # read_only_sql_transaction: a standby, e.g. the old primary after a failover
})
# SQLite's primary result codes for "not now": busy, locked, cannot open, I/O error,
# lock protocol. Its syntax errors and missing tables are OperationalErrors too (SQLITE_ERROR).
SQLITE_AWAY = frozenset({5, 6, 10, 14, 15})

# What may carry an outage to the API: SQLAlchemy's errors, the driver's own, sockets'.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError, PoolTimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
)


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, the driver error SQLAlchemy wrapped, and what caused each, in order."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 10:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        # Explicit causes only: an error raised while handling an outage is its own error.
        todo += [getattr(current, "orig", None), current.__cause__]
    return seen


def _sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return code if isinstance(code, str) else None


def _away_by_itself(exc: BaseException) -> bool:
    if isinstance(exc, PoolTimeoutError):
        return True  # no pooled connection within DB_POOL_TIMEOUT_SECONDS
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True  # SQLAlchemy saw the connection die under this statement
    if isinstance(exc, sqlite3.Error):
        result = getattr(exc, "sqlite_errorcode", None)
        if result is None:  # raised by Python's module itself, not by SQLite
            return isinstance(exc, sqlite3.OperationalError)
        return result & 0xFF in SQLITE_AWAY  # an extended code's low byte is the primary
    if isinstance(exc, OperationalError) and not isinstance(exc.orig, sqlite3.Error):
        return True  # a driver that says "operational" (not asyncpg, which never does)
    code = _sqlstate(exc)
    if code is not None:
        return code in AWAY_SQLSTATES or code[:2] in AWAY_SQLSTATE_CLASSES
    if isinstance(exc, OSError):
        return True  # refused, reset, unreachable, timed out (TimeoutError is one)
    # asyncpg's own "connection is closed" (no SQLSTATE); its other InterfaceErrors are misuse.
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)


def is_database_away(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot answer just now (and retrying later may
    work), rather than that the work itself was wrong."""
    return any(_away_by_itself(cause) for cause in _causes(exc))


def describe(exc: BaseException) -> str:
    """The driver's error inside ``exc`` in one line, e.g.
    ``CannotConnectNowError: the database system is starting up``."""
    causes = _causes(exc)
    inner = next((c for c in causes if not type(c).__module__.startswith("sqlalchemy")), exc)
    text = " ".join(str(inner).split()) or "no message"
    return f"{type(inner).__name__}: {text[:200]}"


def wait_for_database(action: Callable[[], T], seconds: float, what: str = "start") -> T:
    """``action()``, tried again with backoff (0.5 s, 1, 2, 4, then every 5 s) for as long
    as the database is away, for at most ``seconds``; logged at each wait. Any other error,
    and the last one once the time is up, is raised."""

    def waiting(state: RetryCallState) -> None:
        assert state.outcome is not None and state.next_action is not None
        left = max(0.0, seconds - (state.seconds_since_start or 0.0))
        error = state.outcome.exception()
        log.warning("database not answering (%s); retrying in %gs (%ds left to %s)",
                    "no error" if error is None else describe(error),
                    round(state.next_action.sleep, 1), left, what)

    retrying = Retrying(
        retry=retry_if_exception(is_database_away),
        stop=stop_before_delay(seconds),
        wait=wait_exponential(multiplier=0.5, max=5),
        before_sleep=waiting,
        reraise=True,
    )
    return retrying(action)
