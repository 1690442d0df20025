"""``limit``, ``cursor`` and ``order`` of every list."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path, Query

from .. import ids
from ..store import Page
from .errors import ApiError
from .schemas import utc_filter_time


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None
    order: str


def id_pattern(prefix: str) -> str:
    return f"^{prefix}_[0-9a-hjkmnp-tv-z]{{26}}$"


def path_id(prefix: str) -> Any:
    """A path parameter holding a ``prefix`` id. Anything else cannot name a resource:
    404 (errors.py), without asking the database."""
    return Path(pattern=id_pattern(prefix), description=f"a {prefix}_… id")


def page_params(prefix: str | None, names: tuple[str, Callable[[str], bool]] | None = None
                ) -> Callable[..., Awaitable[PageParams]]:
    """The paging parameters of a list of ``prefix`` ids (``None``: tenant ids, yours), or of
    other ``names`` (their pattern, and whether a cursor is one)."""
    if names is not None:
        pattern, valid = names
    else:
        pattern = id_pattern(prefix) if prefix is not None else ids.TENANT_ID_PATTERN.pattern

        def valid(cursor: str) -> bool:
            return ids.is_id(cursor, prefix) if prefix is not None else ids.is_tenant_id(cursor)

    async def params(  # async: FastAPI would run a plain def in a thread
        limit: int = Query(50, ge=1, le=500, description="page size, 1 to 500"),
        cursor: str | None = Query(
            None, description="next_cursor of the previous page",
            json_schema_extra={"pattern": pattern},
        ),
        order: Literal["asc", "desc"] = Query("desc", description="desc: newest first"),
    ) -> PageParams:
        if cursor is not None and not valid(cursor):
            raise ApiError(400, "invalid_cursor", "cursor is not one this list gave out")
        return PageParams(limit, cursor, order)

    return params


# ``?tenant_id=`` of the lists: only what was published for, or goes to, one tenant.
TenantQuery = Annotated[str | None, Query(
    max_length=200, description="only this tenant's", examples=["acme-corp"],
    json_schema_extra={"pattern": ids.TENANT_ID_PATTERN.pattern})]


def query_tenant(value: str | None) -> str | None:
    """``?tenant_id=``, checked (400 in plain words when it cannot be a tenant id)."""
    if value is not None and not ids.is_tenant_id(value):
        raise ApiError(400, "invalid_parameter", f"tenant_id: must be {ids.TENANT_ID_RULE}")
    return value


def query_time(value: datetime | None, name: str) -> datetime | None:
    """A query time in UTC (``schemas.utc_filter_time``); 400 when there is none."""
    try:
        return utc_filter_time(value)
    except ValueError as exc:
        raise ApiError(400, "invalid_parameter", f"{name}: {exc}") from None


def listing(page: Page, shape: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    return {"data": [shape(r) for r in page.rows], "next_cursor": page.next_cursor}
