"""``limit``, ``cursor`` and ``order`` of every list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from fastapi import Query

from .. import ids
from ..store import Page
from .errors import ApiError


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None
    order: str


def page_params(prefix: str):
    def params(
        limit: int = Query(50, ge=1, le=500, description="page size, 1 to 500"),
        cursor: str | None = Query(None, description="next_cursor of the previous page"),
        order: Literal["asc", "desc"] = Query("desc", description="desc: newest first"),
    ) -> PageParams:
        if cursor is not None and not ids.is_id(cursor, prefix):
            raise ApiError(400, "invalid_cursor", "cursor is not one this list gave out")
        return PageParams(limit, cursor, order)

    return params


def as_utc(value: datetime | None) -> datetime | None:
    """Query times without a zone are taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def listing(page: Page, shape) -> dict:
    return {"data": [shape(r) for r in page.rows], "next_cursor": page.next_cursor}
