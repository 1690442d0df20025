"""API keys and roles: who is calling, and may they do this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from ..store import Store
from .errors import ApiError

ROLES = ("admin", "publisher", "subscriber")


@dataclass(frozen=True, slots=True)
class Caller:
    key_id: str
    role: str

    @property
    def owner_filter(self) -> str | None:
        """Admins see everything; anyone else only what their key owns."""
        return None if self.role == "admin" else self.key_id


def store_of(request: Request) -> Store:
    return request.state.store


async def caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <api key>'")
    found = await store_of(request).authenticate(token)
    if found is None:
        raise ApiError(401, "unauthorized", "unknown or deleted API key")
    return Caller(found["id"], found["role"])


def allow(*roles: str):
    """A dependency that lets only ``roles`` through (403 for other valid keys)."""

    async def check(who: Annotated[Caller, Depends(caller)]) -> Caller:
        if who.role not in roles:
            raise ApiError(403, "forbidden", f"a {who.role} key may not do this")
        return who

    return check


Admin = Annotated[Caller, Depends(allow("admin"))]
Publisher = Annotated[Caller, Depends(allow("admin", "publisher"))]
SubscriberOrAdmin = Annotated[Caller, Depends(allow("admin", "subscriber"))]
Anyone = Annotated[Caller, Depends(caller)]
StoreDep = Annotated[Store, Depends(store_of)]
