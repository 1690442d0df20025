"""The long-running commands: ``serve``, ``api``, ``worker``, and ``db upgrade``."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer

from .. import logs
from ..config import Settings
from ..database import open_database
from ..store import Store
from .direct import fail, load_settings, quiet_aiosqlite_threads, safe_url
from .groups import app, db_app

T = TypeVar("T")
HOST = typer.Option(None, help="address to listen on [DISPATCHER_HOST]")
PORT = typer.Option(None, help="port to listen on [DISPATCHER_PORT]")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop, as uvicorn does for ``serve`` and ``api``."""
    import uvloop

    return uvloop.run(main)


def _serve(settings: Settings, workers: bool, host: str | None, port: int | None) -> None:
    children = settings.worker_processes if workers else 0
    logs.configure(settings, pid=children > 0)
    from ..supervisor import Supervisor, private_metrics_dir

    # Before dispatcher.metrics is imported (by the app): it reads the variable then.
    private_metrics = private_metrics_dir() if children else None

    from .. import migrate
    from ..api import create_app
    from ..service import ApiServer, http_config

    _when_database_answers(settings, "migrate", lambda: migrate.upgrade(settings.database_url))
    config = http_config(
        create_app(settings, workers=workers), settings,
        host or settings.host, port if port is not None else settings.port,
        # Our handler and format (logs.configure) for uvicorn's loggers too.
        log_config=None, log_level=settings.log_level.lower(),
    )
    # uvicorn re-raises SIGTERM/SIGINT once it has shut down gracefully; a finished graceful
    # shutdown is a success, so those signals then end the process with status 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    supervisor = Supervisor(children, settings.shutdown_grace_seconds) if children else None
    try:
        ApiServer(config, supervisor).run()
    finally:
        if private_metrics is not None:
            shutil.rmtree(private_metrics, ignore_errors=True)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _when_database_answers(settings: Settings, what: str, action: Callable[[], T]) -> T:
    """``action()`` once the database answers, waiting up to DATABASE_WAIT_SECONDS (a
    database restarting as the process starts); then one line on stderr and exit 1."""
    from ..outage import describe, is_database_away, wait_for_database

    # Each failed connect is logged as one line; aiosqlite's thread traceback is not.
    restore = quiet_aiosqlite_threads()
    try:
        return wait_for_database(action, settings.database_wait_seconds, what)
    except Exception as exc:
        if not is_database_away(exc):
            raise
        fail(f"the database at {safe_url(settings.database_url)} did not answer within "
             f"{settings.database_wait_seconds:g} s (DISPATCHER_DATABASE_WAIT_SECONDS): "
             f"{describe(exc)}")
    finally:
        restore()


async def _ping(settings: Settings) -> None:
    store = Store(open_database(settings))
    try:
        await store.ping()
    finally:
        await store.db.dispose()


@app.command()
def serve(host: str | None = HOST, port: int | None = PORT) -> None:
    """API and delivery workers, and DISPATCHER_WORKER_PROCESSES more worker processes
    (default: one per further CPU); migrates the database first."""
    _serve(load_settings(), True, host, port)


@app.command()
def api(host: str | None = HOST, port: int | None = PORT) -> None:
    """The API alone (run workers with `dispatcher worker`); migrates the database first."""
    _serve(load_settings(), False, host, port)


@app.command()
def worker(
    metrics_port: int | None = typer.Option(
        None, min=1, max=65535,
        help="serve this process's Prometheus metrics at http://HOST:PORT/metrics "
             "(HOST: DISPATCHER_HOST) [DISPATCHER_METRICS_PORT]"),
    parent_fd: int | None = typer.Option(
        None, "--parent-fd", hidden=True,
        help="one of serve's worker processes: the read end of serve's pipe"),
) -> None:
    """Delivery workers alone: claim due deliveries from the database and send them."""
    from ..service import running
    from ..supervisor import die_with_parent, on_parent_gone

    of_serve = parent_fd is not None
    if of_serve:
        die_with_parent()
    settings = load_settings()
    logs.configure(settings, pid=of_serve)
    port = metrics_port if metrics_port is not None else settings.metrics_port
    if of_serve:
        port = None  # serve's /metrics shows this process (PROMETHEUS_MULTIPROC_DIR)
    _when_database_answers(settings, "start the worker", lambda: run_loop(_ping(settings)))

    async def main() -> None:
        async with running(settings, workers=True, serves_requests=False) as runtime:
            assert runtime.worker is not None and runtime.worker_task is not None
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, runtime.worker.stop)
            if parent_fd is not None:
                on_parent_gone(parent_fd, runtime.worker.stop)
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
    from ..metrics import serve_process_metrics

    try:
        stop = serve_process_metrics(settings.host, port, settings.metrics_token)
    except OSError as exc:
        fail(f"cannot serve metrics on {settings.host}:{port}: {exc.strerror or exc}")
    logging.getLogger("dispatcher").info("metrics at http://%s:%d/metrics", settings.host, port)
    return stop


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Run the Alembic migrations up to REVISION (default: the newest)."""
    from .. import migrate

    settings = load_settings()
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")
