"""The one outbound HTTP client of a process.

``httpx.AsyncClient`` is the API; underneath it the ``httpx-aiohttp`` transport by default
(httpcore's pool is several times slower under concurrency), or httpx's own transport when
``DISPATCHER_HTTP_TRANSPORT=httpx``. Redirects are never followed and the environment's
proxy settings are not read. Either way every connection goes through the ``AddressGuard``
after DNS: a refused address is never connected to.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Any

import aiohttp
import anyio
import httpcore
import httpx
from httpx_aiohttp import AiohttpTransport

from .config import Settings
from .targets import AddressGuard, BlockedAddress, guard_for


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class DeliveryClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` that keeps no cookies: a receiver's ``Set-Cookie`` never rides
    along on later deliveries, and no response pays for cookie parsing (a large share of
    httpx's own time per request: docs/benchmarks/measured-choices.md)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NoCookies()

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        pass  # nothing is kept


def open_files_for(connections: int) -> int:
    """Raise this process's soft limit on open files towards its hard limit so that
    ``connections`` sockets fit beside the database's and the API's (many systems start
    processes at 1,024); the soft limit now."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 512
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    open_files_for(settings.http_max_connections)
    # Per-operation timeouts are a backstop; each attempt has one overall deadline too.
    timeout = httpx.Timeout(settings.delivery_timeout_seconds)
    guard = guard_for(settings)
    transport: httpx.AsyncBaseTransport
    if settings.http_transport == "aiohttp":
        transport = AiohttpTransport(client=lambda: _aiohttp_session(settings, guard))
    else:
        transport = _httpx_transport(settings, guard)
    return DeliveryClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


def _aiohttp_session(settings: Settings, guard: AddressGuard) -> aiohttp.ClientSession:
    def guarded_socket(addr_info: Any) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        guard.check(sockaddr[0])
        return socket.socket(family, type_, proto)

    connector = aiohttp.TCPConnector(
        limit=settings.http_max_connections, limit_per_host=0, socket_factory=guarded_socket
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        trust_env=False,
        # Bodies are kept raw (4 KiB at most), so none is invited to come compressed.
        auto_decompress=False,
        skip_auto_headers=("Accept-Encoding",),
    )


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, resolving names itself so the guard sees the address."""

    def __init__(self, guard: AddressGuard) -> None:
        self.guard = guard
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None, socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        permitted = [a for a in addresses if self.guard.permits(a)]
        if not permitted:
            raise httpcore.ConnectError(str(BlockedAddress(addresses[0])))
        return await self.inner.connect_tcp(
            permitted[0], port, timeout=timeout, local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        raise httpcore.ConnectError("unix sockets are not used")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _httpx_transport(settings: Settings, guard: AddressGuard) -> httpx.AsyncHTTPTransport:
    limits = httpx.Limits(
        max_connections=settings.http_max_connections,
        max_keepalive_connections=settings.http_max_connections,
    )
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    # httpx offers no public hook for the network backend; its pool does.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=transport._pool._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_GuardedBackend(guard),
    )
    return transport
