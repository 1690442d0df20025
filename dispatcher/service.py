"""What a process runs: the engine, the store, the one HTTP client, and optionally workers.

Used by the API's lifespan (``dispatcher serve`` / ``dispatcher api``) and by
``dispatcher worker``, so both start and stop the same way.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import httpx
import uvicorn

from . import tracing
from .config import Settings
from .database import open_database
from .store import Store
from .supervisor import Supervisor
from .transport import make_http_client
from .worker import Worker

log = logging.getLogger("dispatcher")

# The workers this process runs, so that a signal can stop their claiming at once.
_workers: set[Worker] = set()


# Longer than the idle expiry of publishers' connection pools (httpx 5 s, aiohttp 15 s), so
# that the client closes an idle connection: a server closing it races the client's next request.
KEEP_ALIVE_SECONDS = 75


def http_config(app: Callable[..., Any], settings: Settings, host: str, port: int,
                **options: Any) -> uvicorn.Config:
    """How uvicorn serves the API, for ``dispatcher serve`` and ``dispatcher api``."""
    return uvicorn.Config(
        app, host=host, port=port, timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_seconds)), **options,
    )


class ApiServer(uvicorn.Server):
    """uvicorn, telling the workers of this process to stop claiming as soon as a signal
    arrives (not only once open HTTP connections are done); with a ``supervisor``, also
    running serve's worker processes, which stop with it."""

    def __init__(self, config: uvicorn.Config, supervisor: Supervisor | None = None) -> None:
        super().__init__(config)
        self.supervisor = supervisor

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        supervisor = self.supervisor
        if supervisor is None:
            return await super().serve(sockets)
        supervisor.start()
        watch = asyncio.create_task(supervisor.watch(), name="supervisor")
        try:
            await super().serve(sockets)
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            if not await supervisor.stop():
                raise SystemExit(1)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self.supervisor is not None:
            self.supervisor.terminate()  # they stop while this process does
        for worker in list(_workers):
            worker.loop.call_soon_threadsafe(worker.stop)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    http_client: httpx.AsyncClient
    worker: Worker | None = None
    worker_task: asyncio.Task[None] | None = None

    @property
    def worker_alive(self) -> bool:
        return self.worker_task is None or not self.worker_task.done()


@asynccontextmanager
async def running(settings: Settings, *, workers: bool,
                  serves_requests: bool = True) -> AsyncIterator[Runtime]:
    db = open_database(settings, serves_requests=serves_requests)
    store = Store(db)
    tracing.from_environment()
    client = tracing.instrument_client(make_http_client(settings))
    runtime = Runtime(settings, store, client)
    listener: asyncio.Task[None] | None = None
    try:
        if workers:
            listener = asyncio.create_task(db.listen(), name="listen")
            runtime.worker = Worker(store, client, settings)
            _workers.add(runtime.worker)
            runtime.worker_task = asyncio.create_task(runtime.worker.run(), name="worker")
        # What start-up made (modules, the app, SQLAlchemy's and pydantic's structures)
        # lives until shutdown: kept out of the garbage collector's full passes, which
        # under load then look only at what requests and attempts made (measured gain:
        # docs/benchmarks/measured-choices.md).
        gc.freeze()
        yield runtime
    finally:
        gc.unfreeze()
        if listener is not None:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
        if runtime.worker is not None and runtime.worker_task is not None:
            _workers.discard(runtime.worker)
            runtime.worker.stop()
            try:
                # The grace period for attempts in flight, then time to record them.
                await asyncio.wait_for(
                    asyncio.shield(runtime.worker_task), settings.shutdown_grace_seconds + 15
                )
            except TimeoutError:
                runtime.worker_task.cancel()
                await asyncio.gather(runtime.worker_task, return_exceptions=True)
            except Exception:
                log.exception("the worker stopped with an error")
            try:
                await store.release_leases(runtime.worker.owner, list(runtime.worker.leased))
            except Exception:
                log.exception("could not release leases; they will expire")
        await client.aclose()
        await db.dispose()
