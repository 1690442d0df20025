"""The event-type catalog: each type with what it means, whether it is deprecated, its
schema and its example (changed through the API: ``PUT /v1/event-types/{type}``)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ...event_types import is_valid_type
from .site import PAGE_SIZE, Admin, PageError, render, router, store_of


def _pretty(value: Any) -> str | None:
    return None if value is None else json.dumps(value, indent=2, ensure_ascii=False)


@router.get("/event-types")
async def event_types(request: Request, session: Admin, cursor: str | None = None) -> Response:
    # The cursor is the last type seen (types are names, not ids).
    if cursor and not is_valid_type(cursor):
        raise PageError(400, "That page link is not valid; start again from the first page.")
    page = await store_of(request).list_event_types(cursor or None, PAGE_SIZE, "desc")
    rows = [row | {"schema_text": _pretty(row["schema"]), "example_text": _pretty(row["example"])}
            for row in page.rows]
    return render(request, "event_types.html", session=session, rows=rows,
                  next_href=f"/ui/event-types?cursor={page.next_cursor}"
                  if page.next_cursor else None)
