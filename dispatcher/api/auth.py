"""API keys and roles: who is calling, and may they do this."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..store import Scope, Store, TenantNotFound
from ..vocabulary import Role
from .errors import ApiError


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str
    role: Role
    tenant_id: str | None = None  # a subscriber key scoped to this tenant

    @property
    def owner_filter(self) -> str | None:
        """Admins see every event; a publisher only those it sent."""
        return None if self.role == Role.ADMIN else self.key_id

    @property
    def scope(self) -> Scope | None:
        """The subscriptions (and their deliveries) this key may see: all for an admin, its
        tenant's for a scoped key, else the ones it made (store ``Scope``)."""
        return None if self.role == Role.ADMIN else Scope(self.key_id, self.tenant_id)

    def tenant_filter(self, asked: str | None) -> str | None:
        """A list's ``?tenant_id=`` for this key. An admin may name any tenant; another key
        only its own, since to it every other tenant does not exist (404)."""
        if asked is None or self.role == Role.ADMIN or asked == self.tenant_id:
            return asked
        raise TenantNotFound(asked)


async def store_of(request: Request) -> Store:
    # async: FastAPI runs a plain-def dependency in a thread, a hop per request.
    store: Store = request.state.store
    return store


DELETED_KEY = "unknown or deleted API key"


async def _authenticate(request: Request, cached: bool) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <api key>'")
    store: Store = request.state.store
    found = await store.authenticate(token, cached=cached)
    admin = request.state.settings.admin_token
    if found is None and admin and hmac.compare_digest(token.encode(), admin.encode()):
        # Stored at start-up, unless the database was away then: here, once it answers.
        await store.ensure_admin(token)
        found = await store.authenticate(token)
    if found is None:
        raise ApiError(401, "unauthorized", DELETED_KEY)
    return Caller(found["id"], found["role"], found["tenant_id"])


async def caller(request: Request) -> Caller:
    return await _authenticate(request, cached=False)


def allow(*roles: Role, remembered: bool = False) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency that lets only ``roles`` through (403 for other valid keys).

    ``remembered``: the key is taken from this process's memory of keys seen live, without
    a query; only for a route whose store call checks in its own transaction that the key
    is still live, and answers 401 if not (``POST /v1/events``:
    ``accept_event(check_key=True)``). One dependency, not two: each level of dependencies
    costs FastAPI time on every request.
    """

    async def check(request: Request) -> Caller:
        who = await _authenticate(request, cached=remembered)
        if who.role not in roles:
            raise ApiError(403, "forbidden", f"a {who.role} key may not do this")
        return who

    return check


Admin = Annotated[Caller, Depends(allow(Role.ADMIN))]
Publisher = Annotated[Caller, Depends(allow(Role.ADMIN, Role.PUBLISHER))]
# The key is checked again when the event commits (see allow).
IngestPublisher = Annotated[Caller, Depends(allow(Role.ADMIN, Role.PUBLISHER, remembered=True))]
SubscriberOrAdmin = Annotated[Caller, Depends(allow(Role.ADMIN, Role.SUBSCRIBER))]
Anyone = Annotated[Caller, Depends(caller)]
StoreDep = Annotated[Store, Depends(store_of)]
