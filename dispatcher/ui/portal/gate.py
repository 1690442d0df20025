"""Into the portal and out: the link's secret, read by the page's own script from the URL's
fragment (which no server sees), is traded for an ``HttpOnly`` session cookie; log out;
and the stylesheet that gives the portal the publisher's colour."""

from __future__ import annotations

import json
import time

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ..pages.site import form_of, same_origin, store_of
from ..session import PORTAL
from .site import HEADERS, Customer, audit, render, router

ENDED = ("This portal link has expired or was revoked. Ask the service that gave it to you "
         "for a new one.")
MAX_TOKEN = 200


def _refused(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=HEADERS)


@router.post("/session")
async def open_session(request: Request) -> Response:
    """``{"token": "<the link's secret>"}`` → 204 with the session cookie, or 401."""
    if not same_origin(request):
        return _refused(403, "forbidden", "The portal's session can only be opened from "
                                          "the portal's own page.")
    try:
        token = json.loads(await request.body()).get("token")
    except (ValueError, AttributeError):
        token = None
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
        return _refused(400, "validation_error", 'send {"token": "…"}, the part of the link '
                                                 "after '#'")
    link = await store_of(request).portal_link(token=token)
    if link is None:
        audit.warning("portal: a link that is unknown, expired or revoked was opened")
        return _refused(401, "portal_link_invalid", ENDED)
    expires_at = int(link.expires_at.timestamp())
    response = Response(status_code=204, headers=HEADERS)
    # The session lasts as long as its link; SameSite=Strict as the dashboard's.
    response.set_cookie(PORTAL.cookie_name, PORTAL.make_cookie(link.id, link.token_hash,
                                                               expires_at),
                        max_age=max(1, expires_at - int(time.time())), path="/portal",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    audit.info("portal: session opened%s", " (read-only)" if link.read_only else "",
               extra={"tenant_id": link.tenant_id, "portal_link_id": link.id})
    return response


@router.post("/logout")
async def log_out(request: Request, visit: Customer) -> Response:
    await form_of(request, visit.session)  # read-only links may log out too
    response = RedirectResponse("/portal/ended", status_code=303, headers=HEADERS)
    response.delete_cookie(PORTAL.cookie_name, path="/portal")
    return response


@router.get("/ended")
async def ended(request: Request) -> Response:
    """After logging out; or (``?link=invalid``) after a link opened in a tab already on the
    portal was refused."""
    if request.query_params.get("link") == "invalid":
        return render(request, "portal/gate.html", None, status=401, message=ENDED)
    return render(request, "portal/gate.html", None, message="You are logged out. Open the "
                  "portal again from the service that gave you the link.", logged_out=True)


@router.get("/theme.css")
async def theme(request: Request) -> Response:
    accent = request.state.settings.portal_accent  # checked: #rrggbb
    return Response(f":root {{ --accent: {accent}; }}\n", media_type="text/css",
                    headers={"cache-control": "max-age=300", "x-content-type-options": "nosniff"})


def gate(request: Request) -> Response:
    """A portal page asked for without a session: the page whose script trades a link's
    secret in the fragment for one and comes back, or says the link has ended."""
    return render(request, "portal/gate.html", None, status=401, message=ENDED)
