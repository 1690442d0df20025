"""Abuse limits: bodies cut off while reading, subscriptions per owner, request deadline."""

from __future__ import annotations

import http.client
import socket
import time

import httpx
import pytest

from .harness import AppServer

ADMIN = "Bearer test-admin-token-0123456789"


def _upload(port: int, headers: str, chunk: bytes, chunked: bool) -> tuple[int, bytes]:
    """Send up to 1 GB; return how much went out before the server stopped us, and its
    answer."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(headers.encode())
        try:
            while sent < 1_000_000_000:
                piece = b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk
                sock.sendall(piece)
                sent += len(chunk)
        except OSError:
            pass  # the server closed the connection: what we wanted
        sock.settimeout(5)
        answer = b""
        try:
            while chunk_in := sock.recv(65536):
                answer += chunk_in
        except OSError:
            pass
    return sent, answer


def test_a_1_gb_upload_is_cut_off_early(app_server):
    port = app_server.port
    chunk = b"x" * 65536
    head = (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN}\r\n"
            "Content-Type: application/json\r\n")
    # Chunked, no Content-Length at all: counted while reading.
    sent, answer = _upload(port, head + "Transfer-Encoding: chunked\r\n\r\n", chunk, True)
    assert sent < 64_000_000 and b" 413 " in answer.split(b"\r\n", 1)[0] + b" "
    # A false, small Content-Length: only that much is read as the body.
    sent, answer = _upload(port, head + "Content-Length: 20\r\n\r\n", chunk, False)
    assert sent < 64_000_000 and answer.startswith(b"HTTP/1.1 4")
    # A huge Content-Length is refused before any of the body is read.
    sent, answer = _upload(port, head + "Content-Length: 1000000000\r\n\r\n", chunk, False)
    assert sent < 64_000_000 and b" 413 " in answer.split(b"\r\n", 1)[0] + b" "


def test_subscriptions_per_owner_are_limited(serve):
    with serve(max_subscriptions_per_owner=3) as admin:
        for i in range(3):
            assert admin.post("/v1/subscriptions",
                              json={"url": f"http://127.0.0.1:9/{i}"}).status_code == 201
        refused = admin.post("/v1/subscriptions", json={"url": "http://127.0.0.1:9/x"})
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "too_many_subscriptions"
        first = admin.get("/v1/subscriptions").json()["data"][0]["id"]
        admin.delete(f"/v1/subscriptions/{first}")
        assert admin.post("/v1/subscriptions",
                          json={"url": "http://127.0.0.1:9/y"}).status_code == 201


def test_slow_request_bodies_hit_the_request_deadline(make_settings):
    with AppServer(make_settings(api_request_timeout_seconds=1.0)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall((f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: {ADMIN}\r\n"
                          "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
                         .encode())
            started = time.monotonic()
            answer = b""
            while piece := sock.recv(65536):  # the server closes after its answer
                answer += piece
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 503")
        assert b"request_timeout" in answer
        assert waited < 5
        assert httpx.get(server.url + "/healthz").status_code == 200



def test_an_idle_connection_outlives_a_clients_pool_expiry(engine, make_settings):
    """httpx drops idle connections after 5 s: a server closing them sooner (uvicorn's 5 s)
    races the client's next request on it, which then fails with a reset."""
    if engine != "sqlite":
        pytest.skip("keep-alive is the HTTP server's, the same on either engine")
    with AppServer(make_settings()) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            for wait in (0, 6):
                time.sleep(wait)
                connection.request("GET", "/healthz")
                answer = connection.getresponse()
                assert (answer.status, answer.read()) == (200, b'{"status":"ok"}')
                if wait == 0:
                    first_socket = connection.sock
            assert connection.sock is first_socket  # the same connection, not a new one
        finally:
            connection.close()
