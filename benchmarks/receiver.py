"""A minimal webhook receiver for benchmarks: as little work per request as possible.

A raw asyncio ``Protocol`` on 127.0.0.1 that answers every request with
``HTTP/1.1 200 OK``, ``Content-Length: 0`` and keep-alive. It parses only what it needs to
find where one request ends: the end of the headers and ``Content-Length``. Chunked
bodies are not supported (the clients under test send ``Content-Length``).

It runs in a process of its own (``Receiver``), so that its CPU does not share the event
loop of the client being measured. The port is chosen by the OS and printed on stdout; the
process stops when its stdin closes. By hand: ``python benchmarks/receiver.py`` (Ctrl-D
stops it).
"""

from __future__ import annotations

import asyncio
import select
import subprocess
import sys
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


class _Stdin(asyncio.Protocol):
    """Sets ``closed`` when the parent closes our stdin (or dies)."""

    def __init__(self) -> None:
        self.closed = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def serve() -> None:
    """Listen, print the port on stdout, serve until stdin closes (at most an hour)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Http, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    _, stdin = await loop.connect_read_pipe(_Stdin, sys.stdin)
    async with server:
        try:
            async with asyncio.timeout(MAX_LIFETIME_SECONDS):
                await stdin.closed
        except TimeoutError:
            pass


class Receiver:
    """``with Receiver() as port:`` a receiver process listening on 127.0.0.1:port.

    A plain subprocess running this file: nothing of the caller is imported into it.
    """

    def __init__(self, start_timeout: float = 20.0) -> None:
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> int:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], self.start_timeout)
        line = self.process.stdout.readline() if ready else b""  # type: ignore[union-attr]
        if not line.strip().isdigit():
            self.__exit__()
            raise RuntimeError("the receiver did not start")
        self.port = int(line)
        return self.port

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
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
