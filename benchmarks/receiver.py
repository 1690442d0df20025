"""A minimal webhook receiver for benchmarks: as little work per request as possible.

A raw asyncio ``Protocol`` on 127.0.0.1 that answers every request with
``HTTP/1.1 200 OK``, ``Content-Length: 0`` and keep-alive. It parses only what it needs to
find where one request ends: the end of the headers and ``Content-Length``. Chunked
bodies are not supported (the clients under test send ``Content-Length``).

It runs in a process of its own (``Receiver``), so that its CPU does not share the event
loop of the client being measured. The port is chosen by the OS and printed on stdout; the
process stops when its stdin closes. By hand: ``python benchmarks/receiver.py`` (Ctrl-D
stops it).

Recording mode (``--record``; ``Receiver(record=True)``), off by default so that the plain
receiver does exactly the work above and nothing more: every complete request is also noted
as ``[webhook-id, path, time.monotonic() of its arrival]`` (the time the data completing it
was read). ``time.monotonic()`` is ``CLOCK_MONOTONIC`` on Linux, the same clock in every
process, so the parent can subtract its own readings. The parent asks on stdin, one command
a line: ``records`` (all records so far, as one JSON line on stdout) or ``clear`` (forget
them; answers ``ok``).
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
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024
MAX_LIFETIME_SECONDS = 3600  # a forgotten receiver still goes away


class _Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

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
            answers.append(OK)
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


class _Stdin(asyncio.Protocol):
    """Sets ``closed`` when the parent closes our stdin (or dies)."""

    def __init__(self) -> None:
        self.closed = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _Commands(_Stdin):
    """Recording mode: answers ``records`` and ``clear`` lines from the parent."""

    def __init__(self) -> None:
        super().__init__()
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        while b"\n" in self.pending:
            line, _, self.pending = self.pending.partition(b"\n")
            command = line.strip()
            if command == b"records":
                answer = json.dumps(_Recording.records, separators=(",", ":"))
            elif command == b"clear":
                _Recording.records.clear()
                answer = '"ok"'
            else:
                answer = json.dumps({"error": f"unknown command {command!r}"})
            sys.stdout.write(answer + "\n")
            sys.stdout.flush()


async def serve(record: bool = False) -> None:
    """Listen, print the port on stdout, serve until stdin closes (at most an hour)."""
    loop = asyncio.get_running_loop()
    protocol = _Recording if record else _Http
    server = await loop.create_server(protocol, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    _, stdin = await loop.connect_read_pipe(_Commands if record else _Stdin, sys.stdin)
    async with server:
        try:
            async with asyncio.timeout(MAX_LIFETIME_SECONDS):
                await stdin.closed
        except TimeoutError:
            pass


class Receiver:
    """``with Receiver() as port:`` a receiver process listening on 127.0.0.1:port.

    A plain subprocess running this file: nothing of the caller is imported into it. With
    ``record=True`` it notes every request; ``records()`` fetches them, ``clear()`` forgets.
    """

    def __init__(self, start_timeout: float = 20.0, record: bool = False) -> None:
        self.start_timeout = start_timeout
        self.record = record
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> int:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())] + (["--record"] if self.record
                                                               else []),
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

    def _ask(self, command: bytes, timeout: float) -> object:
        if not self.record or self.process is None:
            raise RuntimeError("only a running Receiver(record=True) answers commands")
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


if __name__ == "__main__":
    try:
        asyncio.run(serve(record="--record" in sys.argv[1:]))
    except KeyboardInterrupt:
        pass
