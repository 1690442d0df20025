"""A minimal webhook receiver for benchmarks: as little work per request as possible.

A raw asyncio ``Protocol`` on 127.0.0.1 that answers every request with
``HTTP/1.1 200 OK``, ``Content-Length: 0`` and keep-alive. It parses only what it needs to
find where one request ends: the end of the headers and ``Content-Length``. Chunked
bodies are not supported (the clients under test send ``Content-Length``).

It runs in a process of its own (``Receiver``), so that its CPU does not share the event
loop of the client being measured. The port is chosen by the OS and printed on stdout; the
process stops when its stdin closes. By hand: ``python benchmarks/receiver.py`` (Ctrl-D
stops it).

Modes, each off by default so that the plain receiver does exactly the work above:

- recording (``--record``; ``Receiver(record=True)``): every complete request is also noted
  as ``[webhook-id, path, time.monotonic() of its arrival]`` (the time the data completing
  it was read). ``time.monotonic()`` is ``CLOCK_MONOTONIC`` on Linux, the same clock in
  every process, so the parent can subtract its own readings;
- slow (``--delay-ms N``; ``Receiver(delay_ms=N)``): every answer is written N ms after its
  request was read (``loop.call_later``), the connection kept meanwhile;
- another status (``--status 503``; ``Receiver(status=503)``): every request is answered
  with it (no body, keep-alive);
- dead (``--never``; ``Receiver(never=True)``): connections are accepted and read, never
  answered, and held until the client gives up.

In every mode it counts connections (once per connection, nothing per request): open now,
the most open at once, and all accepted. The parent asks on stdin, one command a line, and
reads one JSON line on stdout: ``connections`` (``{"open", "peak", "total"}``), and in
recording mode ``records`` (all records so far) or ``clear`` (forget them; answers ``ok``).
Leaving closes every connection it still holds.
"""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
import time
from pathlib import Path

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
REASONS = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable"}
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024
MAX_LIFETIME_SECONDS = 3600  # a forgotten receiver still goes away


def answer_for(status: int) -> bytes:
    """The whole answer with ``status``: no body, keep-alive."""
    return (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\nContent-Length: 0\r\n"
            "Connection: keep-alive\r\n\r\n").encode()


class _Connections:
    """Connections open now, the most open at once, all accepted: counted once per
    connection; the open ones are closed when the receiver stops."""

    open: set[asyncio.BaseTransport] = set()
    peak = 0
    total = 0

    @classmethod
    def made(cls, transport: asyncio.BaseTransport) -> None:
        cls.open.add(transport)
        cls.total += 1
        cls.peak = max(cls.peak, len(cls.open))

    @classmethod
    def figures(cls) -> dict[str, int]:
        return {"open": len(cls.open), "peak": cls.peak, "total": cls.total}


class _Later:
    """A transport whose writes (and close) happen ``delay`` seconds after they are asked."""

    def __init__(self, transport: asyncio.Transport, delay: float) -> None:
        self._transport = transport
        self._delay = delay
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        self._loop.call_later(self._delay, self._write, data)

    def close(self) -> None:
        # Just after the writes asked before it (timers of one instant have no order).
        self._loop.call_later(self._delay + 0.001, self._transport.close)

    def _write(self, data: bytes) -> None:
        if not self._transport.is_closing():
            self._transport.write(data)


class _Http(asyncio.Protocol):
    ANSWER = OK
    DELAY = 0.0  # seconds before each answer is written

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _Connections.made(transport)
        self.raw = transport
        self.transport = transport  # type: ignore[assignment]
        if self.DELAY:
            self.transport = _Later(transport, self.DELAY)  # type: ignore[assignment,arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        _Connections.open.discard(self.raw)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    return self._fail(answers)
                break
            length, close, ok = _parse_head(bytes(self.buffer[:end]))
            if not ok:
                return self._fail(answers)
            total = end + 4 + length
            if len(self.buffer) < total:
                break  # the body is not all here yet
            del self.buffer[:total]
            answers.append(self.ANSWER)
            if close:
                self.transport.write(b"".join(answers))
                self.transport.close()
                return None
        if answers:
            self.transport.write(b"".join(answers))
        return None

    def _fail(self, answers: list[bytes]) -> None:
        self.transport.write(b"".join(answers) + BAD)
        self.transport.close()


def _parse_head(head: bytes) -> tuple[int, bool, bool]:
    """(Content-Length, whether the client asked to close, whether we can serve it)."""
    length, close = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return 0, True, False
            if length < 0:
                return 0, True, False
        elif name == b"transfer-encoding":
            return 0, True, False  # chunked: not needed here
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    return length, close, True


class _Recording(_Http):
    """``_Http`` that also notes each complete request in ``records``.

    The plain protocol is left untouched: this one lets it answer, then reads again the
    requests it consumed (recording mode only, where a little more work is fine).
    """

    records: list[tuple[str | None, str, float]] = []

    def data_received(self, data: bytes) -> None:
        arrived = time.monotonic()
        pending = bytes(self.buffer) + data
        super().data_received(data)
        consumed = len(pending) - len(self.buffer)
        start = 0
        while start < consumed:
            end = pending.find(b"\r\n\r\n", start, consumed)
            if end < 0:
                break
            head = pending[start:end]
            length, _, ok = _parse_head(head)
            if not ok:
                break
            self.records.append((*_id_and_path(head), arrived))
            start = end + 4 + length


def _id_and_path(head: bytes) -> tuple[str | None, str]:
    """The ``webhook-id`` header (None when absent) and the path of a request head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    path = parts[1].decode("latin-1") if len(parts) > 1 else ""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"webhook-id":
            return value.strip().decode("latin-1"), path
    return None, path


class _Never(_Http):
    """A dead receiver: reads every request and never answers; the connection stays open
    until the client closes it (or the receiver stops)."""

    def data_received(self, data: bytes) -> None:
        pass  # read and dropped: nothing is kept, nothing is answered


def protocol_for(record: bool = False, delay_ms: float = 0, status: int = 200,
                 never: bool = False) -> type[_Http]:
    """The protocol class of a mode; the plain one is ``_Http`` itself, untouched."""
    if never:
        return _Never
    base = _Recording if record else _Http
    if not delay_ms and status == 200:
        return base
    return type(f"{base.__name__}_{status}_{delay_ms:g}ms", (base,),
                {"ANSWER": answer_for(status), "DELAY": delay_ms / 1000})


class _Commands(asyncio.Protocol):
    """Answers the parent's command lines; sets ``closed`` when the parent closes our stdin
    (or dies)."""

    def __init__(self, record: bool) -> None:
        self.closed = asyncio.get_running_loop().create_future()
        self.record = record
        self.pending = b""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.pending += data
        while b"\n" in self.pending:
            line, _, self.pending = self.pending.partition(b"\n")
            sys.stdout.write(json.dumps(self._answer(line.strip()), separators=(",", ":"))
                             + "\n")
            sys.stdout.flush()

    def _answer(self, command: bytes) -> object:
        if command == b"connections":
            return _Connections.figures()
        if command in (b"records", b"clear") and not self.record:
            return {"error": f"{command.decode()!r} needs recording mode (--record)"}
        if command == b"records":
            return _Recording.records
        if command == b"clear":
            _Recording.records.clear()
            return "ok"
        return {"error": f"unknown command {command!r}"}


async def serve(record: bool = False, delay_ms: float = 0, status: int = 200,
                never: bool = False) -> None:
    """Listen, print the port on stdout, serve until stdin closes (at most an hour)."""
    loop = asyncio.get_running_loop()
    protocol = protocol_for(record, delay_ms, status, never)
    server = await loop.create_server(protocol, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    _, stdin = await loop.connect_read_pipe(lambda: _Commands(record), sys.stdin)
    async with server:
        try:
            async with asyncio.timeout(MAX_LIFETIME_SECONDS):
                await stdin.closed
        except TimeoutError:
            pass
        for transport in list(_Connections.open):
            transport.abort()  # a held connection ends now: its client sees it closed


class Receiver:
    """``with Receiver() as port:`` a receiver process listening on 127.0.0.1:port.

    A plain subprocess running this file: nothing of the caller is imported into it. The
    modes are the module's: ``record=True`` notes every request (``records()`` fetches them,
    ``clear()`` forgets), ``delay_ms`` answers late, ``status`` answers another status,
    ``never=True`` never answers. ``connections()`` says how many it saw, in every mode.
    """

    def __init__(self, start_timeout: float = 20.0, record: bool = False, delay_ms: float = 0,
                 status: int = 200, never: bool = False) -> None:
        self.start_timeout = start_timeout
        self.record = record
        self.arguments = (["--record"] if record else []) + \
            ([f"--delay-ms={delay_ms:g}"] if delay_ms else []) + \
            ([f"--status={status}"] if status != 200 else []) + (["--never"] if never else [])
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> int:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *self.arguments],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], self.start_timeout)
        line = self.process.stdout.readline() if ready else b""  # type: ignore[union-attr]
        if not line.strip().isdigit():
            self.__exit__()
            raise RuntimeError("the receiver did not start")
        self.port = int(line)
        return self.port

    def records(self, timeout: float = 30.0) -> list[tuple[str | None, str, float]]:
        """Every request so far (recording mode): ``(webhook-id, path, monotonic arrival)``
        in arrival order."""
        return [tuple(r) for r in self._ask(b"records", timeout)]  # type: ignore[misc]

    def clear(self, timeout: float = 30.0) -> None:
        """Forget the requests recorded so far (recording mode)."""
        self._ask(b"clear", timeout)

    def connections(self, timeout: float = 30.0) -> dict[str, int]:
        """Connections open now (``open``), the most open at once (``peak``), all accepted
        (``total``)."""
        return self._ask(b"connections", timeout)  # type: ignore[return-value]

    def _ask(self, command: bytes, timeout: float) -> object:
        if self.process is None:
            raise RuntimeError("only a running Receiver answers commands")
        self.process.stdin.write(command + b"\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]
        # The answer is one line; it may take several reads when it is long.
        stdout = self.process.stdout
        ready, _, _ = select.select([stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"the receiver did not answer {command!r} within {timeout:g} s")
        answer = json.loads(stdout.readline())  # type: ignore[union-attr]
        if isinstance(answer, dict) and "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def __exit__(self, *_exc: object) -> None:
        if self.process is None:
            return
        self.process.stdin.close()  # type: ignore[union-attr]  # asks it to stop
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process.stdout.close()  # type: ignore[union-attr]
        self.process = None


def _arguments(argv: list[str]) -> dict[str, object]:
    import argparse

    parser = argparse.ArgumentParser(description="a minimal webhook receiver on 127.0.0.1")
    parser.add_argument("--record", action="store_true", help="note every request")
    parser.add_argument("--delay-ms", type=float, default=0,
                        help="answer every request this many ms after it was read")
    parser.add_argument("--status", type=int, default=200, help="answer with this status")
    parser.add_argument("--never", action="store_true",
                        help="accept and read, never answer, hold the connection")
    args = parser.parse_args(argv)
    if args.delay_ms < 0 or not 100 <= args.status <= 599:
        parser.error("--delay-ms must be >= 0 and --status an HTTP status")
    return vars(args)


if __name__ == "__main__":
    try:
        asyncio.run(serve(**_arguments(sys.argv[1:])))  # type: ignore[arg-type]
    except KeyboardInterrupt:
        pass
