"""One signed POST to a subscriber, under one overall deadline, and what came back."""

from __future__ import annotations

import asyncio
import functools
import time
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import httpx

from . import __version__
from .clock import utcnow
from .signing import SigningKey, signature_header

MAX_RESPONSE_BYTES = 4096
USER_AGENT = f"dispatcher/{__version__}"
SEQUENCE_HEADER = "dispatcher-sequence"  # an ordered subscription's N (store/ordering.py)
OWN_HEADERS = ("content-type", "user-agent", "webhook-id", "webhook-timestamp",
               "webhook-signature")


@dataclass(frozen=True, slots=True)
class Response:
    started_at: datetime
    duration_ms: int
    status_code: int | None  # None: no answer (timeout, connection error)
    body: str | None
    error: str | None
    retry_after: str | None
    location: str | None

    @property
    def blocked(self) -> bool:
        """Refused by the connect-time address check (never retried)."""
        return self.status_code is None and (self.error or "").startswith("blocked_address")


def request_headers(
    msg_id: str, keys: list[SigningKey], payload: bytes, extra: dict[str, str], timestamp: int
) -> dict[str, str]:
    own = {name.lower() for name in OWN_HEADERS}
    return {
        **{name: value for name, value in extra.items() if name.lower() not in own},
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(keys, msg_id, timestamp, payload),
    }


def as_text(raw: bytes) -> str:
    """Bytes from a stranger as text any database stores: UTF-8, invalid bytes and NUL
    (which PostgreSQL text refuses) replaced by U+FFFD."""
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description: the deepest cause says the most."""
    root = exc
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(root) or type(root).__name__
    return as_text(f"{type(root).__name__}: {text}"[:500].encode())


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    headers = response.headers
    if headers.get("content-length") == "0" and "transfer-encoding" not in headers:
        return b""  # the common empty answer: no stream iterators set up (measured-choices.md)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


@functools.lru_cache(maxsize=4096)
def parsed_url(url: str) -> httpx.URL:
    """Subscription URLs are few and sent to often: parse each once (``httpx.URL`` is
    immutable)."""
    return httpx.URL(url)


def build_request(url: httpx.URL, headers: dict[str, str], payload: bytes,
                  timeout: float | None = None) -> httpx.Request:
    """The POST that ``httpx.Request(..., content=payload)`` makes, with the same header
    list (Host first, Content-Length after ours, or after Host when there is no body), but
    normalised once: ``content=`` would build and normalise it twice
    (docs/benchmarks/measured-choices.md)."""
    host, length = (b"Host", url.netloc), (b"Content-Length", b"%d" % len(payload))
    # ASCII, as httpx encodes header text itself (anything else fails here as it did there).
    ours = [(name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]
    listed = [host, *ours, length] if payload else [host, length, *ours]
    request = httpx.Request("POST", url, headers=listed, stream=httpx.ByteStream(payload))
    if timeout is not None:
        # The attempt's deadline, not the client's default (a subscription may set its own).
        request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
    request.read()  # the body as ``content=`` keeps it: the aiohttp transport sends bytes
    return request


async def send(
    client: httpx.AsyncClient,
    url: str,
    msg_id: str,
    payload: bytes,
    keys: list[SigningKey],
    extra_headers: dict[str, str],
    deadline: float,
) -> Response:
    started_at = utcnow()
    start = time.perf_counter()
    headers = request_headers(msg_id, keys, payload, extra_headers, int(time.time()))
    status_code = None
    body = error = retry_after = location = None
    try:
        async with asyncio.timeout(deadline):
            # A Request built here, not by client.build_request: none of the client's default
            # headers (Accept-Encoding would invite bodies we do not decompress).
            request = build_request(parsed_url(url), headers, payload, deadline)
            resp = await client.send(request, stream=True)
            try:
                status_code = resp.status_code
                retry_after = resp.headers.get("retry-after")
                location = resp.headers.get("location")
                raw = await _read_at_most(resp, MAX_RESPONSE_BYTES)
                body = as_text(raw)
            finally:
                await resp.aclose()
                del resp.stream  # breaks httpx's response <-> stream cycle (measured-choices.md)
    except TimeoutError:
        error = f"timeout: no complete answer within {deadline:g} s"
        if status_code is not None:
            # The status line arrived but the body did not: still the receiver's verdict.
            error = f"timeout reading the response body after {deadline:g} s"
    except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
        if status_code is None:
            error = describe_error(exc)
            if "blocked_address: " in error:
                error = error[error.index("blocked_address: "):]
        else:
            error = "error reading the response body: " + describe_error(exc)
    except Exception as exc:  # noqa: BLE001 - whatever happens, the attempt gets recorded
        status_code = None
        error = "the request could not be sent: " + describe_error(exc)
    if status_code is not None and 300 <= status_code < 400 and error is None:
        error = f"redirect not followed (location: {location})"[:500]
    duration_ms = int((time.perf_counter() - start) * 1000)
    return Response(started_at, duration_ms, status_code, body, error, retry_after, location)
