from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from ..auth import Admin, StoreDep
from ..errors import BODY_ERRORS, error_responses
from ..paging import PageParams, listing, page_params, path_id
from ..query import StrictQueryRoute
from ..schemas import KeyCreated, KeyIn, KeyOut, Listing

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"], route_class=StrictQueryRoute)
KeyId = Annotated[str, path_id("key")]


@router.post("", status_code=201, response_model=KeyCreated,
             responses=error_responses(*BODY_ERRORS, 422), summary="Create an API key")
async def create_key(body: KeyIn, _: Admin, store: StoreDep) -> dict[str, Any]:
    """Make an API key; the plain key is in this answer and nowhere else, ever.

    Roles: admin."""
    return await store.create_key(body.role, body.name)


@router.get("", response_model=Listing[KeyOut], responses=error_responses(400),
            summary="List API keys",
            description="The keys that are not deleted, newest first, without the keys "
                        "themselves.\n\nRoles: admin.")
async def list_keys(
    _: Admin, store: StoreDep, page: Annotated[PageParams, Depends(page_params("key"))]
) -> dict[str, Any]:
    found = await store.list_keys(page.cursor, page.limit, page.order)
    return listing(found, lambda r: r)


@router.delete("/{key_id}", status_code=204, responses=error_responses(404),
               summary="Delete an API key")
async def delete_key(key_id: KeyId, _: Admin, store: StoreDep) -> Response:
    """Delete a key: it answers 401 from the next request on, in every process.

    Roles: admin."""
    await store.delete_key(key_id)
    return Response(status_code=204)
