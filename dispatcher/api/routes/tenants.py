from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from ...ids import TENANT_ID_PATTERN, TENANT_ID_RULE, is_tenant_id
from ...store import TenantNotFound
from ...vocabulary import Role
from ..auth import Admin, Caller, StoreDep, allow
from ..errors import BODY_ERRORS, ERROR_EXAMPLES, ApiError, error_responses
from ..paging import PageParams, listing, page_params
from ..query import StrictQueryRoute
from ..schemas import Listing, PortalLinkIn, PortalLinkOut, TenantIn, TenantOut

router = APIRouter(prefix="/v1/tenants", tags=["tenants"], route_class=StrictQueryRoute)
# Checked in the route (its words, and 422 or 404 as the route means), documented here.
TenantPath = Annotated[str, Path(description="the tenant's id: yours",
                                 json_schema_extra={"pattern": TENANT_ID_PATTERN.pattern},
                                 examples=["acme-corp"])]
TENANT_404 = "tenant_not_found: no such tenant, or not this key's"


def named(tenant_id: str) -> str:
    """A path's tenant id; one of the wrong shape names no tenant (404)."""
    if not is_tenant_id(tenant_id):
        raise TenantNotFound(tenant_id)
    return tenant_id


@router.put("/{tenant_id}", status_code=201, response_model=TenantOut,
            responses={200: {"model": TenantOut, "description": "an existing tenant, replaced"},
                       **error_responses(*BODY_ERRORS, 422, s422="invalid_tenant_id, or "
                                         "validation_error: a body field is invalid")},
            summary="Create or replace a tenant")
async def put_tenant(
    tenant_id: TenantPath, _: Admin, store: StoreDep, body: TenantIn | None = None,
) -> Response:
    """Create the tenant with your own id for it (201), or replace its name and metadata
    (200). Fields left out take their defaults: PUT says the whole tenant.

    Roles: admin."""
    if not is_tenant_id(tenant_id):
        raise ApiError(422, "invalid_tenant_id", f"a tenant id is {TENANT_ID_RULE}")
    body = body or TenantIn()
    row, created = await store.put_tenant(tenant_id, body.name, body.metadata)
    return Response(TenantOut.model_validate(row).model_dump_json(),
                    status_code=201 if created else 200, media_type="application/json")


@router.get("", response_model=Listing[TenantOut], responses=error_responses(400),
            summary="List tenants",
            description="Every tenant, newest first.\n\nRoles: admin.")
async def list_tenants(
    _: Admin, store: StoreDep, page: Annotated[PageParams, Depends(page_params(None))],
) -> dict[str, Any]:
    found = await store.list_tenants(page.cursor, page.limit, page.order)
    return listing(found, lambda r: r)


@router.get("/{tenant_id}", response_model=TenantOut,
            responses=error_responses(404, s404=TENANT_404), summary="Get a tenant",
            description="One tenant. A key scoped to it may read it too; to any other key "
                        "another tenant does not exist.\n\nRoles: admin, subscriber (scoped).")
async def get_tenant(
    tenant_id: TenantPath, store: StoreDep,
    who: Annotated[Caller, Depends(allow(Role.ADMIN, Role.SUBSCRIBER))],
) -> dict[str, Any]:
    who.tenant_filter(tenant_id)  # to a key not scoped to it, the tenant does not exist
    return await store.get_tenant(named(tenant_id))


@router.delete("/{tenant_id}", status_code=204,
               responses=error_responses(404, s404=TENANT_404), summary="Delete a tenant")
async def delete_tenant(tenant_id: TenantPath, _: Admin, store: StoreDep) -> Response:
    """Delete the tenant, its subscriptions (their open deliveries become ``cancelled``) and
    its scoped keys (401 from the next request on). Its events and deliveries stay, as
    history, until pruned.

    Roles: admin."""
    await store.delete_tenant(named(tenant_id))
    return Response(status_code=204)


@router.post("/{tenant_id}/portal-links", status_code=201, response_model=PortalLinkOut,
             responses=error_responses(*BODY_ERRORS, 404, 409, 422, s404=TENANT_404,
                                       s409="portal_disabled: DISPATCHER_PORTAL_ENABLED is "
                                            "false"),
             summary="Make a portal link")
async def create_portal_link(
    tenant_id: TenantPath, _: Admin, store: StoreDep, request: Request,
    body: PortalLinkIn | None = None,
) -> PortalLinkOut:
    """A link that opens the tenant's portal in a browser, where your customer manages its
    own endpoints and sees and retries its deliveries. Give it to the signed-in customer
    at once (a "Webhooks" button in your settings page): it is shown only now, and works
    until it expires, is revoked, or the tenant is deleted. Its secret is in the URL's
    fragment, which browsers never send; the portal trades it for a session cookie and
    removes it from the address bar. The host comes from ``DISPATCHER_PUBLIC_URL``.

    Roles: admin."""
    settings = request.state.settings
    if not settings.portal_enabled:
        raise ApiError(409, "portal_disabled", ERROR_EXAMPLES["portal_disabled"])
    body = body or PortalLinkIn()
    link, token = await store.create_portal_link(named(tenant_id), body.expires_in_seconds,
                                                 body.read_only)
    origin = settings.public_origin()
    return PortalLinkOut(url=f"{origin}/portal#{token}", expires_at=link.expires_at,
                         read_only=link.read_only)


@router.post("/{tenant_id}/portal-links/revoke", status_code=204,
             responses=error_responses(404, s404=TENANT_404), summary="Revoke portal links")
async def revoke_portal_links(tenant_id: TenantPath, _: Admin, store: StoreDep) -> Response:
    """Every portal link of the tenant made so far stops working, and every portal session
    opened with one ends at its next request. Links made afterwards work.

    Roles: admin."""
    await store.revoke_portal_links(named(tenant_id))
    return Response(status_code=204)
