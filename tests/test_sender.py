"""sender.send on the wire: the exact request bytes each HTTP transport puts on a real socket
(127.0.0.1), and what is kept of the answer."""

from __future__ import annotations

import asyncio
import gc

import aiohttp
import httpx
import pytest

from dispatcher import sender
from dispatcher.config import Settings
from dispatcher.transport import make_http_client

PAYLOAD = b'{"a": 1}'
KEYS = [b"k" * 24, b"j" * 24]
TIMESTAMP = 1700000000
SIGNATURE = ("v1,sX/oHFumOIvCxhyFMHjAtLHcUB+79M4HnsV9R6cTS7Y= "
             "v1,yw/0naNBnWPHt6WNKUDmKXX15yYf2ZPfiEDKjul+198=")
# A subscription's own headers: theirs in any case, two that differ only in case, and some
# that ours replace (compared case-insensitively).
EXTRA = {"X-Custom": "v", "Content-Type": "text/plain", "USER-AGENT": "x", "X-A": "1",
         "x-a": "2", "Webhook-Id": "z", "Accept": "text/x"}
OURS = ("content-type: application/json\r\nuser-agent: dispatcher/0.1.0\r\n"
        "webhook-id: msg_1\r\nwebhook-timestamp: 1700000000\r\n"
        f"webhook-signature: {SIGNATURE}\r\n")

# What each transport sends, byte for byte: aiohttp gets the names as httpx.Headers lists them
# (lower case, repeated names joined) and adds Accept when it is not given; httpcore sends
# the list as built.
ON_THE_WIRE = {
    "aiohttp": [
        "POST /hook?x=1 HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n" + OURS
        + "content-length: 8\r\nAccept: */*\r\n\r\n",
        "POST /hook?x=1 HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nx-custom: v\r\nx-a: 1, 2\r\n"
        "accept: text/x\r\n" + OURS + "content-length: 8\r\n\r\n",
    ],
    "httpx": [
        "POST /hook?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n" + OURS
        + "Content-Length: 8\r\n\r\n",
        "POST /hook?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Custom: v\r\nX-A: 1\r\nx-a: 2\r\n"
        "Accept: text/x\r\n" + OURS + "Content-Length: 8\r\n\r\n",
    ],
}


async def _serve_keep_alive(answer: bytes, got: list[bytes],
                            open_: list[asyncio.StreamWriter]) -> asyncio.Server:
    """Answers every request with ``answer`` on a kept-alive connection; notes each."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_.append(writer)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            got.append(head + await reader.readexactly(length[0] if length else 0))
            writer.write(answer)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _send_all(transport: str, answer: bytes, extras: list[dict[str, str]]
              ) -> tuple[int, list[bytes], list[sender.Response]]:
    async def run() -> tuple[int, list[bytes], list[sender.Response]]:
        got: list[bytes] = []
        open_: list[asyncio.StreamWriter] = []
        server = await _serve_keep_alive(answer, got, open_)
        port = server.sockets[0].getsockname()[1]
        client = make_http_client(Settings(allow_private_targets=True,
                                           http_transport=transport))
        try:
            answers = [await sender.send(client, f"http://127.0.0.1:{port}/hook?x=1", "msg_1",
                                         PAYLOAD, KEYS, extra, 5.0) for extra in extras]
        finally:
            await client.aclose()
            server.close()
            for writer in open_:
                writer.close()  # the handler still reading sees the end, and returns
            await asyncio.sleep(0.01)
        return port, got, answers

    return asyncio.run(run())


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_the_request_on_the_wire_is_exactly_this(transport, monkeypatch):
    monkeypatch.setattr(sender.time, "time", lambda: float(TIMESTAMP))
    port, got, answers = _send_all(transport, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                                   [{}, EXTRA])
    assert [a.status_code for a in answers] == [200, 200]
    expected = [(head.format(port=port)).encode() + PAYLOAD for head in ON_THE_WIRE[transport]]
    assert got == expected


@pytest.mark.parametrize("payload", [PAYLOAD, b""], ids=["body", "empty"])
@pytest.mark.parametrize("extra", [{}, EXTRA], ids=["ours", "theirs-too"])
def test_build_request_is_what_httpx_builds_from_content(payload, extra):
    url = sender.parsed_url("http://127.0.0.1:8080/hook?x=1")
    headers = sender.request_headers("msg_1", KEYS, payload, extra, TIMESTAMP)
    ours = sender.build_request(url, headers, payload)
    httpx_own = httpx.Request("POST", url, content=payload, headers=headers)
    assert ours.headers.raw == httpx_own.headers.raw
    assert list(ours.headers.items()) == list(httpx_own.headers.items())
    assert (ours.method, ours.url, ours.content) == (httpx_own.method, httpx_own.url, payload)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize(("answer", "body", "retry_after", "location"), [
    (b"HTTP/1.1 204 No Content\r\n\r\n", "", None, None),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "", None, None),
    (b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 3\r\n\r\nbye", "bye", "7", None),
    (b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", "", None, "/x"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + b"y" * 5000, "y" * 4096, None, None),
])
def test_what_is_kept_of_the_answer(transport, answer, body, retry_after, location):
    _, got, answers = _send_all(transport, answer, [{}, {}])
    assert len(got) == 2  # the connection was reused, or opened again, for the second
    for kept in answers:
        assert (kept.body, kept.retry_after, kept.location) == (body, retry_after, location)
        assert kept.status_code == int(answer.split(b" ")[1])



@pytest.mark.parametrize(("transport", "body", "error"), [
    ("aiohttp", None, "BadHttpMessage"), ("httpx", "ok", None)])
def test_a_zero_content_length_beside_chunked_framing_is_not_taken_for_no_body(
        transport, body, error):
    """Transfer-Encoding wins over Content-Length (RFC 9112); aiohttp refuses the answer."""
    _, _, [kept] = _send_all(transport, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", [{}])
    assert kept.body == body
    assert (kept.error or "").startswith(error or "")


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_an_attempt_leaves_no_response_to_the_cycle_collector(transport):
    """Its objects go by reference counting when it ends (a cycle made the collector a seventh
    of the CPU per send: docs/benchmarks/measured-choices.md)."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        _send_all(transport, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", [{}] * 5)
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage
                if isinstance(o, httpx.Response | aiohttp.ClientResponse)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []
