from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from ..auth import Admin, StoreDep
from ..paging import PageParams, listing, page_params
from ..schemas import KeyCreated, KeyIn, KeyOut, Listing

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


@router.post("", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyIn, _: Admin, store: StoreDep) -> dict:
    """Make an API key; the plain key is in this answer and nowhere else, ever."""
    return await store.create_key(body.role, body.name)


@router.get("", response_model=Listing[KeyOut])
async def list_keys(
    _: Admin, store: StoreDep, page: Annotated[PageParams, Depends(page_params("key"))]
) -> dict:
    found = await store.list_keys(page.cursor, page.limit, page.order)
    return listing(found, lambda r: r)


@router.delete("/{key_id}", status_code=204)
async def delete_key(key_id: str, _: Admin, store: StoreDep) -> Response:
    """Delete a key: it answers 401 from the next request on."""
    await store.delete_key(key_id)
    return Response(status_code=204)
