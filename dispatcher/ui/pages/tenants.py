"""Tenants: the list with what each has (subscriptions, unwell ones, deliveries waiting or
failed), and one tenant's page with its metadata and subscriptions."""

from __future__ import annotations

import json

from fastapi import Request
from fastapi.responses import Response

from ... import ids
from ...store import TenantCounts, TenantNotFound
from .site import PAGE_SIZE, Admin, PageError, cursor_of, render, router, store_of
from .subscriptions import health_context


@router.get("/tenants")
async def tenants(request: Request, session: Admin, cursor: str | None = None) -> Response:
    # The cursor is the last tenant id seen (tenant ids are the publisher's own).
    if cursor and not ids.is_tenant_id(cursor):
        raise PageError(400, "That page link is not valid; start again from the first page.")
    store = store_of(request)
    page = await store.list_tenants(cursor or None, PAGE_SIZE, "desc")
    counts = await store.tenant_counts([r["id"] for r in page.rows])
    return render(request, "tenants.html", session=session, page=page, counts=counts,
                  nothing=TenantCounts())


@router.get("/tenants/{tenant_id}")
async def tenant(request: Request, session: Admin, tenant_id: str,
                 cursor: str | None = None) -> Response:
    store = store_of(request)
    try:  # an id of the wrong shape names nothing (404, as in the API)
        if not ids.is_tenant_id(tenant_id):
            raise TenantNotFound(tenant_id)
        row = await store.get_tenant(tenant_id)
    except TenantNotFound:
        raise PageError(404, f"No tenant is called {tenant_id}.") from None
    page = await store.list_subscriptions(None, cursor_of(cursor, "sub"), PAGE_SIZE, "desc",
                                          tenant_id=tenant_id)
    counts = (await store.tenant_counts([tenant_id])).get(tenant_id, TenantCounts())
    metadata = json.dumps(row["metadata"], indent=2, ensure_ascii=False, sort_keys=True)
    return render(request, "tenant.html", session=session, t=row, metadata=metadata,
                  counts=counts, rows=page.rows, **await health_context(store, page.rows),
                  next_href=f"/ui/tenants/{tenant_id}?cursor={page.next_cursor}"
                  if page.next_cursor else None)
