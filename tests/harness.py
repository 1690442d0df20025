"""Real parts for tests: receiver HTTP servers and the dispatcher app on 127.0.0.1."""

from __future__ import annotations

import asyncio
import atexit
import http.server
import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from dispatcher.api import create_app
from dispatcher.config import Settings
from dispatcher.service import http_config


def poll(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
         message: str = "condition") -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{message} not reached within {timeout} s (last: {last!r})")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    wall: float = 0.0
    answered: float | None = None  # monotonic, as the answer's last bytes go (or it failed)


def most_in_flight(requests: list[Received]) -> int:
    """The most of ``requests`` a receiver held at once: from arrival until its answer was
    written (an unanswered one holds on to the end)."""
    edges = sorted([(r.at, 1) for r in requests]
                   + [(r.answered if r.answered is not None else float("inf"), -1)
                      for r in requests], key=lambda e: (e[0], e[1]))
    most = held = 0
    for _, step in edges:
        held += step
        most = max(most, held)
    return most


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    close_without_answer: bool = False


class Receiver:
    """A subscriber: a threaded ``http.server`` on 127.0.0.1 that records every request.

    ``reply`` decides each answer from the request count so far (1-based) and the request.
    """

    def __init__(self, reply: Callable[[int, Received], Reply] | None = None) -> None:
        self.reply = reply or (lambda n, r: Reply())
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The status line and headers go out before the body, in two writes: without
            # TCP_NODELAY the body waited for the client's delayed ACK, 40 ms an answer.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                               body, time.monotonic(), time.time())
                with receiver._lock:
                    receiver.requests.append(got)
                    number = len(receiver.requests)
                try:
                    answer = receiver.reply(number, got)
                    if answer.delay:
                        time.sleep(answer.delay)
                    if answer.close_without_answer:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    # Stamped before the last bytes go: the client cannot have the whole
                    # answer (and send its next request) before this, however late this
                    # thread runs again after the write.
                    got.answered = time.monotonic()
                    self.wfile.write(answer.body)
                finally:
                    if got.answered is None:
                        got.answered = time.monotonic()

            # A browser that follows a link to the receiver: recorded (its Referer) the same.
            do_GET = do_POST  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            # Read by listen() in the constructor: a burst of connections is not dropped.
            request_queue_size = 512

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients that hang up on a slow answer: expected in these tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def ids(self) -> list[str]:
        with self._lock:
            return [r.headers["webhook-id"] for r in self.requests]


# Each pytest-xdist worker takes ports from a range of its own, below the kernel's ephemeral
# range, walking it in turn: a port the kernel hands out for port 0 can be handed to another
# worker as soon as it is closed, and a server that then failed to bind left a test talking to
# another test's server (its /healthz answered; its metrics were someone else's).
PORTS_PER_WORKER = 2_000
_FIRST_PORT = 12_000 + int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0
                           ) % 8 * PORTS_PER_WORKER
_turn = itertools.count(random.randrange(PORTS_PER_WORKER))


def free_port() -> int:
    for _ in range(PORTS_PER_WORKER):
        port = _FIRST_PORT + next(_turn) % PORTS_PER_WORKER
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or just left in TIME_WAIT): the next one
            return port
    raise RuntimeError(f"no free port in {_FIRST_PORT}-{_FIRST_PORT + PORTS_PER_WORKER - 1}")


class AppServer:
    """``create_app(settings)`` served by uvicorn on 127.0.0.1 in a thread of its own."""

    def __init__(self, settings: Settings, workers: bool = True) -> None:
        self.port = free_port()
        config = http_config(create_app(settings, workers=workers), settings, "127.0.0.1",
                             self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()),
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AppServer:
        self.thread.start()
        poll(lambda: self.server.started or not self.thread.is_alive(), 20, message="start-up")
        if not self.server.started:
            raise RuntimeError("the app did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)


_children: list[Any] = []


@atexit.register
def _kill_leftovers() -> None:
    """A test that failed before stopping its processes must not leave them running."""
    for child in _children:
        if child.poll() is None:
            child.kill()


class ServeProcess:
    """``dispatcher serve`` (or ``api``, ``worker``) as its own process, its log in a file.

    serve runs in one process unless the test asks for DISPATCHER_WORKER_PROCESSES: tests
    that count processes, claims or attempts of "the" process, or kill it, mean that one.
    """

    command = "serve"

    def __init__(self, database_url: str, log_path: Any, **env: str) -> None:
        import sys

        self.port = free_port()
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DISPATCHER_DATABASE_URL": database_url,
            "DISPATCHER_ADMIN_TOKEN": "test-admin-token-0123456789",
            "DISPATCHER_ALLOW_PRIVATE_TARGETS": "true",
            "DISPATCHER_PORT": str(self.port),
            "DISPATCHER_WORKER_PROCESSES": "0",
            "PYTHONWARNINGS": "always::ResourceWarning",
            **env,
        }
        self.argv = [sys.executable, "-m", "dispatcher.cli", self.command]
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> ServeProcess:
        """Start the process and return at once (``start`` also waits until it is ready)."""
        import subprocess

        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log)
        log.close()
        _children.append(self.process)
        return self

    def start(self) -> ServeProcess:
        self.launch()

        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"dispatcher {self.command} exited: {self.log()}")
            return self.ready()

        poll(up, 30, 0.1, message=f"dispatcher {self.command} start-up")
        return self

    def ready(self) -> bool:
        import httpx

        try:
            return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        import signal

        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        import signal

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except Exception:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc), zombies left out."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                # "pid (comm) state ppid ...": comm may hold spaces, so split after it.
                state, ppid = f.read().rpartition(")")[2].split()[:2]
        except OSError:
            continue
        if int(ppid) == pid and state != "Z":
            found.append(int(name))
    return sorted(found)


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie (a process gone but not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def command_line(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [part.decode() for part in f.read().split(b"\0") if part]


def environment_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = (part.decode().partition("=") for part in f.read().split(b"\0") if part)
        return {name: value for name, _, value in pairs}


class ApiProcess(ServeProcess):
    command = "api"


class WorkerProcess(ServeProcess):
    command = "worker"

    def ready(self) -> bool:
        return "worker wrk_" in self.log()


class TcpProxy:
    """A TCP proxy on 127.0.0.1 that can be cut and restored: a database that goes away.

    ``down()`` closes the listening socket and every open connection; ``up()`` listens on
    the same port again.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers -= {writer, up_writer}

    async def _up(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port,
                                                 reuse_address=True)

    async def _down(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    def up(self) -> None:
        asyncio.run_coroutine_threadsafe(self._up(), self.loop).result(10)

    def down(self) -> None:
        asyncio.run_coroutine_threadsafe(self._down(), self.loop).result(10)

    def __enter__(self) -> TcpProxy:
        self.thread.start()
        self.up()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
