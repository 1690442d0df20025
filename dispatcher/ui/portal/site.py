"""What every portal page shares: the router, the customer's session (a live portal link
of one tenant), the checked form of a change (refused to read-only links), rendering with
the portal's own headers and look."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from ...store import PortalLink, Scope
from ..pages import site
from ..pages.site import PageError, form_of, store_of
from ..session import PORTAL, Session

router = APIRouter(prefix="/portal", include_in_schema=False)
# Who changed what in a portal: one info line per change (tenant and link ids, never the
# link's secret).
audit = logging.getLogger("dispatcher.portal")
STATIC = "/portal/static"
# The dashboard's, but no Referer at all: nothing of a portal address leaves the page.
HEADERS = site.HEADERS | {"referrer-policy": "no-referrer"}
# After a change its page is shown again with ?done=<what>: a fixed text, never echoed.
DONE = {
    "saved": "Your changes are saved.",
    "deleted": "The endpoint is deleted; its deliveries not yet sent are cancelled.",
    "enabled": "The endpoint is enabled; deliveries held while it was off are being sent.",
    "disabled": "The endpoint is disabled; new deliveries wait until you enable it.",
    "retry": "One more attempt is scheduled now.",
}
READ_ONLY = "This portal link is read-only: it shows your endpoints and deliveries, and " \
            "changes nothing."


@dataclass(frozen=True, slots=True)
class Visit:
    """A customer in the portal: the session and the live link it was opened with."""

    session: Session
    link: PortalLink

    @property
    def tenant_id(self) -> str:
        return self.link.tenant_id

    @property
    def read_only(self) -> bool:
        return self.link.read_only

    @property
    def scope(self) -> Scope:
        """What the store lets it see: its tenant's subscriptions and their deliveries."""
        return Scope(self.link.id, self.link.tenant_id)

    @property
    def csrf(self) -> str:
        return self.session.csrf


class SessionEnded(Exception):
    """No live portal session: never opened, expired, revoked, or the tenant deleted."""


async def current_visit(request: Request) -> Visit | None:
    cookie = request.cookies.get(PORTAL.cookie_name, "")
    link_id = PORTAL.subject_of(cookie)
    if link_id is None:
        return None
    # Read on every request: revoking the link or deleting the tenant ends it at once.
    link = await store_of(request).portal_link(link_id=link_id)
    if link is None:
        return None
    session = PORTAL.open(cookie, link.token_hash, time.time())
    return None if session is None else Visit(session, link)


async def need_visit(request: Request) -> Visit:
    visit = await current_visit(request)
    if visit is None:
        raise SessionEnded()
    return visit


Customer = Annotated[Visit, Depends(need_visit)]


def render(request: Request, name: str, visit: Visit | None, status: int = 200,
           **context: Any) -> HTMLResponse:
    settings = request.state.settings
    context.setdefault("done", DONE.get(request.query_params.get("done", "")))
    return site.render(request, name, status, session=visit.session if visit else None,
                       headers=HEADERS, static=STATIC, visit=visit,
                       portal_title=settings.portal_title, **context)


def may_change(visit: Visit) -> None:
    """PageError 403 for a read-only link: no change, and no page whose form makes one."""
    if visit.read_only:
        raise PageError(403, READ_ONLY)


async def change_of(request: Request, visit: Visit) -> dict[str, str]:
    """The posted form of a change, once the link may change things and its CSRF token and
    origin are checked."""
    may_change(visit)
    return await form_of(request, visit.session)


def log_change(visit: Visit, what: str, **ids: Any) -> None:
    audit.info("portal: %s", what, extra={"tenant_id": visit.tenant_id,
                                          "portal_link_id": visit.link.id, **ids})
