"""Receivers that misbehave on purpose: real TCP servers on 127.0.0.1, both HTTP transports.

Each receiver is a ``HostileServer``: a threaded TCP server whose per-connection behaviour is
a plain function of a ``Conn`` (read the request, then send whatever bytes, drip, reset,
never answer...). Every case checks what the delivery and its attempts record, that every
attempt ends within the overall deadline (plus a margin), and that the worker still delivers
to a healthy subscription afterwards.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Callable
from contextlib import contextmanager, suppress
from typing import Any

import pytest

from .harness import Receiver, poll
from .test_delivery import attempts_of, deliveries_of, publish, settled, subscribe

DEADLINE = 1.5  # delivery_timeout_seconds for every case
MARGIN = 1.0  # an attempt may end at most this long after its deadline
RETRY = (0.2,)  # one retry, soon
IO_TIMEOUT = 5.0  # the hostile server's own socket timeout: nothing in it blocks forever
MB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# The hostile receiver
# --------------------------------------------------------------------------------------------


class Conn:
    """One accepted connection, as the behaviour function sees it; counts what it sends."""

    def __init__(self, sock: socket.socket, number: int, stopping: threading.Event) -> None:
        self.sock = sock
        self.number = number  # 1-based, in accept order
        self.stopping = stopping
        self.accepted_at = time.monotonic()
        self.request = b""
        self.sent = 0
        self.ended: str | None = None  # how the server side ended (set when done)
        self.client_closed_at: float | None = None  # monotonic, when the client hung up
        self.done = threading.Event()
        sock.settimeout(IO_TIMEOUT)

    # -- reading --------------------------------------------------------------------------
    def read_request(self) -> bytes:
        """The whole request (head and Content-Length body); bounded in size and time."""
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed before the request was complete")
            buf += chunk
            if len(buf) > MB:
                raise ConnectionError("request head too large")
        head, _, body = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("client closed inside the request body")
            body += chunk
        self.request = head + b"\r\n\r\n" + body
        return self.request

    def wait_client_close(self, timeout: float = 10.0) -> bool:
        """Read (and drop) until the client closes; False on timeout or server shutdown."""
        self.sock.settimeout(0.05)
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end and not self.stopping.is_set():
                try:
                    if not self.sock.recv(65536):
                        self.client_closed_at = time.monotonic()
                        return True
                except TimeoutError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    self.client_closed_at = time.monotonic()
                    return True
            return False
        finally:
            self.sock.settimeout(IO_TIMEOUT)

    # -- writing --------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Send everything, counting exactly what the kernel took (``sendall`` cannot)."""
        view = memoryview(data)
        while view:
            n = self.sock.send(view)
            self.sent += n
            view = view[n:]

    def pause(self, seconds: float) -> bool:
        """Wait on the server's side; True if the server is shutting down."""
        return self.stopping.wait(seconds)

    def reset(self) -> None:
        """Close with SO_LINGER 0: the peer gets a RST, not a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class HostileServer:
    """A threaded TCP server on 127.0.0.1; ``behaviour(conn)`` runs once per connection.

    An exception in the behaviour (the client hung up: EPIPE, ECONNRESET) ends that
    connection and is recorded in ``conn.ended``. ``__exit__`` stops everything: behaviours
    must wait with ``conn.pause`` / ``wait_client_close`` so they notice the stop at once.
    """

    def __init__(self, behaviour: Callable[[Conn], None]) -> None:
        self.behaviour = behaviour
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.stopping = threading.Event()
        self.connections: list[Conn] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"

    def __enter__(self) -> HostileServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(IO_TIMEOUT + 1)
        self.listener.close()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                conn = Conn(sock, len(self.connections) + 1, self.stopping)
                self.connections.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: Conn) -> None:
        try:
            self.behaviour(conn)
            conn.ended = conn.ended or "behaviour returned"
        except (BrokenPipeError, ConnectionResetError) as exc:
            conn.ended = f"client closed ({type(exc).__name__})"
            conn.client_closed_at = conn.client_closed_at or time.monotonic()
        except Exception as exc:  # noqa: BLE001 - recorded; the test decides
            conn.ended = f"{type(exc).__name__}: {exc}"
        finally:
            try:
                conn.sock.close()
            except OSError:
                pass
            conn.done.set()

    def conns(self) -> list[Conn]:
        with self._lock:
            return list(self.connections)

    def requests(self) -> int:
        return sum(1 for c in self.conns() if c.request)


# --------------------------------------------------------------------------------------------
# Shared set-up and checks
# --------------------------------------------------------------------------------------------


@pytest.fixture(params=["aiohttp", "httpx"])
def transport(request: pytest.FixtureRequest) -> str:
    return request.param


@contextmanager
def hostile_setup(serve, transport, behaviour, **overrides):
    """An app on ``transport``, a hostile and a healthy subscription (by event type)."""
    settings = {"http_transport": transport, "delivery_timeout_seconds": DEADLINE,
                "retry_schedule": RETRY, **overrides}
    with serve(**settings) as admin, HostileServer(behaviour) as hostile, \
            Receiver() as healthy:
        subscribe(admin, hostile.url, event_types=["hostile.*"])
        subscribe(admin, healthy.url, event_types=["healthy.*"])
        yield admin, hostile, healthy


def deliver_hostile(admin):
    event = publish(admin, "hostile.poke", {"n": 1})
    [delivery] = settled(admin, event["id"])
    return delivery, attempts_of(admin, delivery["id"])


def assert_worker_still_delivers(admin, healthy):
    """After the hostile receiver, a healthy subscription still gets its delivery."""
    event = publish(admin, "healthy.ping")
    [delivery] = settled(admin, event["id"])
    assert (delivery["status"], delivery["attempts"]) == ("succeeded", 1), delivery
    assert event["id"] in healthy.ids()


def assert_client_hung_up(server, conn_count):
    """Every connection ended with the client closing it (no connection left dangling)."""
    poll(lambda: len(server.conns()) == conn_count
         and all(c.client_closed_at is not None for c in server.conns()),
         DEADLINE + 5, message="the client closed every connection")


# --------------------------------------------------------------------------------------------
# 1. Dripping one byte per second
# --------------------------------------------------------------------------------------------

DRIP_BODY = b"x" * 100
DRIP_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
             b"content-length: %d\r\n\r\n" % len(DRIP_BODY))


def drip(conn: Conn) -> None:
    """Connection 1: everything dribbled from the status line on. Later ones: the head at
    once, the body dribbled. One byte a second, well inside any per-read timeout (1.5 s);
    the whole answer would take minutes."""
    conn.read_request()
    if conn.number == 1:
        to_drip = DRIP_HEAD + DRIP_BODY
    else:
        conn.send(DRIP_HEAD)
        to_drip = DRIP_BODY
    for i in range(len(to_drip)):
        conn.send(to_drip[i:i + 1])
        # A second between bytes, noticing at once when the client hangs up.
        if conn.wait_client_close(1.0) or conn.stopping.is_set():
            return


def test_drip_feed_is_cut_by_the_overall_deadline(serve, transport):
    with hostile_setup(serve, transport, drip) as (admin, hostile, healthy):
        delivery, attempts = deliver_hostile(admin)
        # Attempt 1 never saw a status line: a timeout, retried. Attempt 2 got "200 OK" and
        # its body timed out: the status line is the receiver's verdict, so it succeeded.
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 2), delivery
        first, second = attempts
        assert first["status_code"] is None and first["outcome"] == "failed"
        assert first["error"] == f"timeout: no complete answer within {DEADLINE:g} s"
        assert second["status_code"] == 200 and second["outcome"] == "succeeded"
        assert second["error"] == f"timeout reading the response body after {DEADLINE:g} s"
        assert (second["response_body"] or "") in DRIP_BODY.decode()
        # The overall deadline, not a per-read timeout (never reached here), ended both.
        for a in attempts:
            assert (DEADLINE - 0.1) * 1000 <= a["duration_ms"] < (DEADLINE + MARGIN) * 1000, a
        assert_client_hung_up(hostile, 2)
        for conn in hostile.conns():
            assert conn.client_closed_at - conn.accepted_at < DEADLINE + MARGIN
            assert conn.sent < len(DRIP_HEAD + DRIP_BODY)
        assert_worker_still_delivers(admin, healthy)


# --------------------------------------------------------------------------------------------
# 2. Connection reset in the middle of the answer
# --------------------------------------------------------------------------------------------


def reset_mid_response(conn: Conn) -> None:
    """Connection 1: status line and half a header, then RST. Later ones: a complete head
    announcing 1,000 bytes, 10 of them, then RST."""
    conn.read_request()
    if conn.number == 1:
        conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/pl")
    else:
        conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                  b"content-length: 1000\r\n\r\n" + b"y" * 10)
    # Let the client take in what was sent before the RST (which can drop unread data).
    if conn.pause(0.3):
        return
    conn.reset()


def test_connection_reset_mid_response(serve, transport):
    with hostile_setup(serve, transport, reset_mid_response) as (admin, hostile, healthy):
        delivery, attempts = deliver_hostile(admin)
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 2), delivery
        first, second = attempts
        # No complete head: no answer, a connection error, retried.
        assert first["status_code"] is None and first["outcome"] == "failed"
        assert first["error"] and "timeout" not in first["error"], first
        # A complete 200 head whose body was cut: the verdict stands, the error says why.
        assert second["status_code"] == 200 and second["outcome"] == "succeeded"
        assert second["error"].startswith("error reading the response body: "), second
        assert (second["response_body"] or "") in "y" * 10
        # A reset is noticed at once, not at the deadline.
        for a in attempts:
            assert a["duration_ms"] < DEADLINE * 1000, a
        assert hostile.requests() == 2
        assert_worker_still_delivers(admin, healthy)


# --------------------------------------------------------------------------------------------
# 3. A 100 MB answer
# --------------------------------------------------------------------------------------------

HUGE = 100 * MB


def huge_body(conn: Conn) -> None:
    """Content-Length 100 MB, "0"s streamed until the client stops taking them.

    ``send`` blocks once the client stops reading (the kernel buffers are full); the socket
    timeout (5 s) then ends it with "TimeoutError", which the test reports: the client
    neither read on nor closed the connection.
    """
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
              b"content-length: %d\r\n\r\n" % HUGE)
    head = conn.sent
    # ASCII "0"s: NUL bytes are a separate case (test_nul_bytes_in_the_answer_are_recorded).
    chunk = b"0" * (64 * 1024)
    while conn.sent - head < HUGE and not conn.stopping.is_set():
        conn.send(chunk[: HUGE - (conn.sent - head)])
    conn.ended = "sent everything"


@pytest.mark.slow
def test_a_100_mb_answer_is_cut_at_4_kib(serve, transport):
    with hostile_setup(serve, transport, huge_body) as (admin, hostile, healthy):
        # Memory: the app runs in this process (uvicorn in a thread), so tracemalloc sees its
        # allocations. Its peak counts every Python-level allocation (bytes objects of the
        # body, parser buffers) from reset to now, in all threads, independently of what the
        # process did before; ru_maxrss could not do that (a high-water mark for the whole
        # process life, already raised by earlier tests, so it would hide growth below it).
        # Reading the 100 MB into memory, even briefly, would show as a ~100 MB peak; the
        # bound is generous for the noise of the app itself while tracing.
        was_tracing = tracemalloc.is_tracing()
        if not was_tracing:
            tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            delivery, attempts = deliver_hostile(admin)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            if not was_tracing:
                tracemalloc.stop()
        assert peak - before < 50 * MB, f"memory peak grew by {(peak - before) / MB:.1f} MB"

        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 1), delivery
        [attempt] = attempts
        assert attempt["status_code"] == 200 and attempt["outcome"] == "succeeded"
        assert attempt["error"] is None
        assert attempt["response_body"] == "0" * 4096
        assert attempt["duration_ms"] < DEADLINE * 1000, attempt  # no waiting for the rest

        # The client stopped reading and hung up long before 100 MB.
        [conn] = hostile.conns()
        poll(conn.done.is_set, IO_TIMEOUT + 2, message="the 100 MB sender to stop")
        assert conn.ended.startswith("client closed"), (
            f"server side ended with {conn.ended!r} after {conn.sent / MB:.1f} MB: the "
            "client did not close the connection")
        assert conn.sent < 10 * MB, f"the server managed to send {conn.sent / MB:.1f} MB"
        assert_worker_still_delivers(admin, healthy)


# --------------------------------------------------------------------------------------------
# 4. Not HTTP at all
# --------------------------------------------------------------------------------------------

GARBAGE = b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\xfe this is not HTTP \x01\x02\r\n\r\n"


def garbage(conn: Conn) -> None:
    """Garbage instead of a status line, then the connection left open: the client must
    see for itself that this is not HTTP."""
    conn.read_request()
    conn.send(GARBAGE)
    conn.wait_client_close(10)


def test_invalid_http_is_a_connection_error(serve, transport):
    with hostile_setup(serve, transport, garbage) as (admin, hostile, healthy):
        delivery, attempts = deliver_hostile(admin)
        # Not an answer: retried like a connection error, then failed.
        assert (delivery["status"], delivery["attempts"]) == ("failed", 2), delivery
        assert delivery["last_status_code"] is None and delivery["last_error"]
        for a in attempts:
            assert a["status_code"] is None and a["outcome"] == "failed", a
            assert a["error"] and "timeout" not in a["error"], a
            assert a["response_body"] is None
            assert a["duration_ms"] < DEADLINE * 1000, a  # noticed at once
        assert_client_hung_up(hostile, 2)
        assert_worker_still_delivers(admin, healthy)


# --------------------------------------------------------------------------------------------
# 5. A redirect loop
# --------------------------------------------------------------------------------------------


def redirect_to_itself(conn: Conn) -> None:
    conn.read_request()
    url = conn.request.split(b" ", 2)[1]  # the path; make it absolute, to this very server
    host, port = conn.sock.getsockname()
    location = b"http://%s:%d%s" % (host.encode(), port, url)
    conn.send(b"HTTP/1.1 302 Found\r\nlocation: " + location + b"\r\ncontent-length: 0\r\n\r\n")
    conn.wait_client_close(10)


def test_redirect_loop_is_not_followed(serve, transport):
    with hostile_setup(serve, transport, redirect_to_itself) as (admin, hostile, healthy):
        delivery, attempts = deliver_hostile(admin)
        assert (delivery["status"], delivery["attempts"]) == ("failed", 1), delivery
        assert delivery["next_attempt_at"] is None
        [attempt] = attempts
        assert attempt["status_code"] == 302 and attempt["outcome"] == "failed"
        assert attempt["error"] == f"redirect not followed (location: {hostile.url})"
        assert attempt["duration_ms"] < DEADLINE * 1000
        assert delivery["last_error"] == attempt["error"]
        # Exactly one request reached the server: nothing followed the Location.
        assert hostile.requests() == 1
        assert_worker_still_delivers(admin, healthy)
        assert hostile.requests() == 1


# --------------------------------------------------------------------------------------------
# 6. 200, no body, no Content-Length, connection closed
# --------------------------------------------------------------------------------------------


def empty_200_then_close(conn: Conn) -> None:
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\n\r\n")  # no Content-Length: the body ends at close
    conn.sock.shutdown(socket.SHUT_WR)
    conn.wait_client_close(10)


def test_empty_200_closed_without_length_succeeds(serve, transport):
    with hostile_setup(serve, transport, empty_200_then_close) as (admin, hostile, healthy):
        delivery, attempts = deliver_hostile(admin)
        assert (delivery["status"], delivery["attempts"]) == ("succeeded", 1), delivery
        [attempt] = attempts
        assert attempt["status_code"] == 200 and attempt["outcome"] == "succeeded"
        assert attempt["error"] is None
        assert attempt["response_body"] == ""
        assert attempt["duration_ms"] < DEADLINE * 1000
        assert hostile.requests() == 1
        assert_worker_still_delivers(admin, healthy)


# --------------------------------------------------------------------------------------------
# 7. Accepts, reads the request, never answers
# --------------------------------------------------------------------------------------------


def never_answer(conn: Conn) -> None:
    conn.read_request()
    conn.wait_client_close(30)


# A shorter deadline here (nothing is dripped, so no per-read timeout to stay under): the
# case takes two deadlines, on two transports and two engines.
SILENT_DEADLINE = 1.0


@pytest.mark.slow
def test_silent_receiver_times_out_is_retried_then_fails(serve, transport):
    with hostile_setup(serve, transport, never_answer,
                       delivery_timeout_seconds=SILENT_DEADLINE) as (admin, hostile, healthy):
        delivery, attempts = deliver_hostile(admin)
        assert (delivery["status"], delivery["attempts"]) == ("failed", len(RETRY) + 1)
        assert delivery["next_attempt_at"] is None
        assert delivery["last_status_code"] is None
        assert [a["number"] for a in attempts] == [1, 2]
        for a in attempts:
            assert a["status_code"] is None and a["outcome"] == "failed", a
            assert a["error"] == f"timeout: no complete answer within {SILENT_DEADLINE:g} s", a
            assert (SILENT_DEADLINE - 0.1) * 1000 <= a["duration_ms"], a
            assert a["duration_ms"] < (SILENT_DEADLINE + MARGIN) * 1000, a
        # The retry came per the schedule: after the first deadline plus the 0.2 s wait.
        assert_client_hung_up(hostile, 2)
        first, second = hostile.conns()
        gap = second.accepted_at - first.accepted_at
        assert SILENT_DEADLINE + RETRY[0] - 0.1 <= gap < SILENT_DEADLINE + RETRY[0] + 2.0, gap
        # Each connection was dropped by the client at its deadline, not kept open.
        for conn in (first, second):
            assert conn.client_closed_at - conn.accepted_at < SILENT_DEADLINE + MARGIN
        assert_worker_still_delivers(admin, healthy)


# --------------------------------------------------------------------------------------------
# 8. NUL bytes in the answer
# --------------------------------------------------------------------------------------------

NUL_BODY = b"ok\x00\x00ok"


def nul_answer(conn: Conn) -> None:
    conn.read_request()
    conn.send(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(NUL_BODY) + NUL_BODY)
    conn.wait_client_close(10)


def test_nul_bytes_in_the_answer_are_recorded(serve):
    # NUL is valid UTF-8, so the decoded body keeps it; PostgreSQL text cannot hold it. The
    # body is decoded the same way on both transports: the default one is enough here.
    # shutdown_grace_seconds=0: if the recorder is stuck, the app stops after 15 s, not 45.
    with hostile_setup(serve, "aiohttp", nul_answer, shutdown_grace_seconds=0) as (
            admin, hostile, healthy):
        bad = publish(admin, "hostile.poke")
        poll(lambda: hostile.requests() == 1, DEADLINE + 3, message="the hostile request")
        good = publish(admin, "healthy.ping")
        poll(lambda: good["id"] in healthy.ids(), DEADLINE + 3, message="the healthy request")

        def statuses():
            return {name: [d["status"] for d in deliveries_of(admin, event["id"])]
                    for name, event in (("nul", bad), ("healthy", good))}

        expected = {"nul": ["succeeded"], "healthy": ["succeeded"]}
        with suppress(AssertionError):
            poll(lambda: statuses() == expected, DEADLINE + 4)
        # Both requests were sent (above); both attempts must also be recorded.
        assert statuses() == expected, (
            "a 200 whose body holds NUL bytes, then a healthy 200: deliveries not recorded")
        [delivery] = deliveries_of(admin, bad["id"])
        [attempt] = attempts_of(admin, delivery["id"])
        assert attempt["status_code"] == 200 and attempt["outcome"] == "succeeded"
        body = attempt["response_body"]
        assert body.startswith("ok") and body.endswith("ok"), body
