"""The ``dispatcher`` command."""

from __future__ import annotations

import asyncio
import logging
import signal

import typer
import uvicorn

from .config import Settings

app = typer.Typer(help="dispatcher: webhook fan-out service.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _serve(settings: Settings, workers: bool, host: str | None, port: int | None) -> None:
    from . import migrate
    from .api import create_app

    _logging(settings)
    migrate.upgrade(settings.database_url)
    config = uvicorn.Config(
        create_app(settings, workers=workers),
        host=host or settings.host,
        port=port if port is not None else settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.delivery_timeout_seconds) + 5,
    )
    # uvicorn re-raises SIGTERM/SIGINT once it has shut down gracefully; a finished graceful
    # shutdown is a success, so those signals then end the process with status 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    uvicorn.Server(config).run()


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


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
def worker() -> None:
    """Delivery workers alone: claim due deliveries from the database and send them."""
    from .service import running

    settings = Settings()
    _logging(settings)

    async def main() -> None:
        async with running(settings, workers=True) as runtime:
            assert runtime.worker is not None and runtime.worker_task is not None
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, runtime.worker.stop)
            logging.getLogger("dispatcher").info("worker %s started", runtime.worker.owner)
            await runtime.worker_task

    asyncio.run(main())


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Run the Alembic migrations up to REVISION (default: the newest)."""
    from . import migrate

    settings = Settings()
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}")


if __name__ == "__main__":
    app()
