"""The yardstick for ingest: the least a FastAPI endpoint can do with an event.

One route, ``POST /v1/events``: the body is validated with the model the real API uses
(``dispatcher.api.schemas.EventIn``) and the answer is 202 with a small JSON body. Nothing
is stored, no key is checked, no middleware runs.

It is served the way ``dispatcher api`` serves (``dispatcher/cli.py`` ``_serve``): one
uvicorn process with its defaults, so uvloop and httptools when they are installed, log
level warning (no access log). ``BareApp`` runs it as a process of its own, so that the
load generator's CPU is not its CPU. By hand: ``python benchmarks/bare_app.py --port 8001``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from fastapi import FastAPI

from dispatcher.api.schemas import EventIn

MAX_LIFETIME_SECONDS = 3600  # a forgotten server still goes away

app = FastAPI(title="bare")


@app.post("/v1/events", status_code=202)
async def post_event(body: EventIn) -> dict:
    return {"type": body.type, "deliveries": 0}


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python benchmarks/bare_app.py")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    stop = threading.Timer(MAX_LIFETIME_SECONDS, os.kill, (os.getpid(), signal.SIGTERM))
    stop.daemon = True
    stop.start()
    # As dispatcher/cli.py _serve does, without what only matters to dispatcher.
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=args.port,
                                  log_level="warning")).run()


class BareApp:
    """``with BareApp() as url:`` this app in a process of its own, on 127.0.0.1; ``url`` is
    its ``/v1/events``. Leaving stops it with SIGTERM (SIGKILL after 10 s)."""

    def __init__(self, start_timeout: float = 30.0) -> None:
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        from .common import free_port, wait_until_ready

        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--port", str(port)])
        try:
            wait_until_ready(self.process, lambda: _listening(port), self.start_timeout,
                             "the bare app")
        except RuntimeError:
            self.__exit__()
            raise
        return f"http://127.0.0.1:{port}/v1/events"

    def __exit__(self, *_exc: object) -> None:
        from .common import stop

        if self.process is not None:
            stop(self.process, 10)
        self.process = None


def _listening(port: int) -> bool:
    """uvicorn listens only once it has started up."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


if __name__ == "__main__":
    main()
