"""Browser sessions: a signed cookie naming what opened it, and CSRF tokens bound to it.

The cookie is ``<id>.<expiry>.<mac>``, signed with a key derived from a hash the database
keeps and never sends: the admin key's for the dashboard, the portal link's for the portal.
No session table: any API process can check it, it survives restarts, and deleting what
opened it (the key, or revoking the link) ends every session it opened at once.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str  # what opened it: an admin key (dashboard) or a portal link (portal)
    cookie: str
    csrf: str  # the token every form of this session posts back


@dataclass(frozen=True, slots=True)
class Realm:
    """One kind of session: its cookie's name, the id prefix it names, and its own signing
    keys (a dashboard cookie is never a portal cookie, whatever the hash)."""

    cookie_name: str
    id_prefix: str
    label: bytes

    def _mac(self, secret_hash: str, purpose: str, message: str) -> str:
        key = hashlib.sha256(self.label + b"\x00" + secret_hash.encode()).digest()
        return hmac.new(key, f"{purpose}\x00{message}".encode(), hashlib.sha256).hexdigest()

    def make_cookie(self, subject_id: str, secret_hash: str, expires_at: int) -> str:
        body = f"{subject_id}.{expires_at}"
        return f"{body}.{self._mac(secret_hash, 'session', body)}"

    def subject_of(self, cookie: str) -> str | None:
        """What a cookie claims to be for (not yet checked)."""
        parts = cookie.split(".")
        return parts[0] if len(parts) == 3 and parts[0].startswith(self.id_prefix) else None

    def open(self, cookie: str, secret_hash: str, now: float) -> Session | None:
        """The session, if ``cookie`` was signed with this hash and has not expired."""
        try:
            subject_id, expires, mac = cookie.split(".")
            expires_at = int(expires)
        except ValueError:
            return None
        if expires_at <= now:
            return None
        if not hmac.compare_digest(mac, self._mac(secret_hash, "session",
                                                  f"{subject_id}.{expires}")):
            return None
        return Session(subject_id, cookie, self._mac(secret_hash, "csrf", cookie)[:40])


DASHBOARD = Realm("dispatcher_session", "key_", b"dispatcher-ui")
PORTAL = Realm("dispatcher_portal", "ptl_", b"dispatcher-portal")
COOKIE = DASHBOARD.cookie_name


def make_cookie(key_id: str, key_hash: str, expires_at: int) -> str:
    return DASHBOARD.make_cookie(key_id, key_hash, expires_at)


def key_id_of(cookie: str) -> str | None:
    """The key a dashboard cookie claims to be for (not yet checked)."""
    return DASHBOARD.subject_of(cookie)


def open_session(cookie: str, key_hash: str, now: float) -> Session | None:
    return DASHBOARD.open(cookie, key_hash, now)


def csrf_ok(session: Session, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(session.csrf, token)
