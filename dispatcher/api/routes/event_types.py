"""``/v1/event-types``: the catalog of event types, each with a description, an example and
the JSON Schema its events' data must match (checked at ingest: ``routes/events.py``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from ... import catalog
from ...event_types import RESERVED_PREFIX, TYPE_PATTERN, is_reserved, is_valid_type
from ...store import NotFound
from ..auth import Admin, Anyone, StoreDep
from ..errors import BODY_ERRORS, ApiError, error_responses
from ..paging import PageParams, listing, page_params
from ..query import StrictQueryRoute
from ..schemas import EventTypeIn, EventTypeOut, Listing

router = APIRouter(prefix="/v1/event-types", tags=["event types"],
                   route_class=StrictQueryRoute)
TypePath = Annotated[str, Path(description="the event type", examples=["invoice.paid"],
                               json_schema_extra={"pattern": TYPE_PATTERN.pattern})]
PUT_422 = ("validation_error: a body field is invalid, or the type is not a valid name; "
           "reserved_event_type: a dispatcher.… type; invalid_schema: the schema cannot be "
           "used (why is said); schema_mismatch: the example does not match the schema")


def _named(event_type: str) -> str:
    """A path's type; one that cannot be a type names none (404)."""
    if not is_valid_type(event_type):
        raise NotFound(event_type)
    return event_type


def _shown(row: dict[str, Any]) -> EventTypeOut:
    return EventTypeOut.model_validate(row)


@router.put("/{event_type}", status_code=201, response_model=EventTypeOut,
            responses={200: {"model": EventTypeOut, "description": "an existing type, replaced"},
                       **error_responses(*BODY_ERRORS, 422, s422=PUT_422)},
            summary="Create or replace an event type")
async def put_event_type(
    event_type: TypePath, _: Admin, store: StoreDep, body: EventTypeIn | None = None,
) -> Response:
    """Put the type in the catalog (201), or replace what is said of it (200). Fields left
    out take their defaults: PUT says the whole entry. From the next second on, every API
    process checks the data of new events of this type against its schema.

    Roles: admin."""
    if not is_valid_type(event_type):
        raise ApiError(422, "validation_error", "type: dot-separated words of letters, "
                       "digits and _, at most 128 characters")
    if is_reserved(event_type):
        raise ApiError(422, "reserved_event_type", f"type: {RESERVED_PREFIX}… types are "
                       "dispatcher's own operational events (docs/api.md)")
    body = body or EventTypeIn()
    if body.data_schema is not None:
        try:
            validator = catalog.check_schema(body.data_schema)
        except catalog.InvalidSchema as exc:
            raise ApiError(422, "invalid_schema", str(exc)) from None
        if body.example is not None and (
                why := catalog.mismatch(validator, body.example, "example")):
            raise ApiError(422, "schema_mismatch", why)
    row, created = await store.put_event_type(event_type, {
        "description": body.description, "schema": body.data_schema,
        "deprecated": body.deprecated, "example": body.example})
    return Response(_shown(row).model_dump_json(by_alias=True),
                    status_code=201 if created else 200, media_type="application/json")


@router.get("", response_model=Listing[EventTypeOut], responses=error_responses(400),
            summary="List event types",
            description="The catalog, newest first.\n\nRoles: any key.")
async def list_event_types(
    _: Anyone, store: StoreDep,
    page: Annotated[PageParams, Depends(page_params(None, (TYPE_PATTERN.pattern,
                                                           is_valid_type)))],
) -> dict[str, Any]:
    found = await store.list_event_types(page.cursor, page.limit, page.order)
    return listing(found, _shown)


@router.get("/{event_type}", response_model=EventTypeOut, responses=error_responses(404),
            summary="Get an event type",
            description="One entry of the catalog.\n\nRoles: any key.")
async def get_event_type(event_type: TypePath, _: Anyone, store: StoreDep) -> EventTypeOut:
    return _shown(await store.get_event_type(_named(event_type)))


@router.delete("/{event_type}", status_code=204, responses=error_responses(404),
               summary="Delete an event type")
async def delete_event_type(event_type: TypePath, _: Admin, store: StoreDep) -> Response:
    """Take the type out of the catalog: its events are no longer checked (or, with
    ``DISPATCHER_REQUIRE_EVENT_TYPES``, no longer accepted). Events already stored stay.

    Roles: admin."""
    await store.delete_event_type(_named(event_type))
    return Response(status_code=204)
