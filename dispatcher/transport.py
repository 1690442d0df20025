"""The one outbound HTTP client of a process.

``httpx.AsyncClient`` is the API; underneath it the ``httpx-aiohttp`` transport by default
(httpcore's pool is several times slower under concurrency), or httpx's own transport when
``DISPATCHER_HTTP_TRANSPORT=httpx``. Redirects are never followed and the environment's
proxy settings are not read.
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from .config import Settings


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    # Per-operation timeouts are a backstop; each attempt has one overall deadline too.
    timeout = httpx.Timeout(settings.delivery_timeout_seconds)
    limits = httpx.Limits(
        max_connections=settings.http_max_connections,
        max_keepalive_connections=settings.http_max_connections,
    )
    transport: httpx.AsyncBaseTransport
    if settings.http_transport == "aiohttp":
        max_connections = settings.http_max_connections

        def session() -> aiohttp.ClientSession:
            connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0)
            return aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
                auto_decompress=False,
            )

        transport = AiohttpTransport(client=session)
    else:
        transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
