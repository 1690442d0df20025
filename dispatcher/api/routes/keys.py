from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from ...vocabulary import Role
from ..auth import Admin, StoreDep
from ..errors import BODY_ERRORS, ApiError, error_responses
from ..paging import PageParams, TenantQuery, listing, page_params, path_id, query_tenant
from ..query import StrictQueryRoute
from ..schemas import KeyCreated, KeyIn, KeyOut, Listing

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], route_class=StrictQueryRoute)
KeyId = Annotated[str, path_id("key")]


@router.post("", status_code=201, response_model=KeyCreated,
             responses=error_responses(*BODY_ERRORS, 404, 422,
                                       s404="tenant_not_found: no such tenant"),
             summary="Create an API key")
async def create_key(body: KeyIn, _: Admin, store: StoreDep) -> dict[str, Any]:
    """Make an API key; the plain key is in this answer and nowhere else, ever. A subscriber
    key with ``tenant_id`` is scoped to that tenant: it manages every subscription of the
    tenant, with their deliveries, and sees nothing else.

    Roles: admin."""
    if body.tenant_id is not None and body.role != Role.SUBSCRIBER:
        raise ApiError(422, "validation_error", f"tenant_id: only a subscriber key can be "
                       f"scoped to a tenant, not a {body.role} key")
    return await store.create_key(body.role, body.name, tenant_id=body.tenant_id)


@router.get("", response_model=Listing[KeyOut], responses=error_responses(400),
            summary="List API keys",
            description="The keys that are not deleted, newest first, without the keys "
                        "themselves.\n\nRoles: admin.")
async def list_keys(
    _: Admin, store: StoreDep, page: Annotated[PageParams, Depends(page_params("key"))],
    tenant_id: TenantQuery = None,
) -> dict[str, Any]:
    found = await store.list_keys(page.cursor, page.limit, page.order,
                                  tenant_id=query_tenant(tenant_id))
    return listing(found, lambda r: r)


@router.delete("/{key_id}", status_code=204, responses=error_responses(404),
               summary="Delete an API key")
async def delete_key(key_id: KeyId, _: Admin, store: StoreDep) -> Response:
    """Delete a key: it answers 401 from the next request on, in every process.

    Roles: admin."""
    await store.delete_key(key_id)
    return Response(status_code=204)
