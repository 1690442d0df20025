"""Dashboard sessions: a signed cookie naming an admin key, and CSRF tokens bound to it.

The cookie is ``<key id>.<expiry>.<mac>``, signed with a key derived from the admin key's
stored hash. No session table: any API process can check it, it survives restarts, and
deleting the key (``DELETE /v1/api-keys/{id}``) ends every session it opened at once.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

COOKIE = "dispatcher_session"


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    cookie: str
    csrf: str  # the token every form of this session posts back


def _mac(key_hash: str, purpose: str, message: str) -> str:
    key = hashlib.sha256(b"dispatcher-ui\x00" + key_hash.encode()).digest()
    return hmac.new(key, f"{purpose}\x00{message}".encode(), hashlib.sha256).hexdigest()


def make_cookie(key_id: str, key_hash: str, expires_at: int) -> str:
    body = f"{key_id}.{expires_at}"
    return f"{body}.{_mac(key_hash, 'session', body)}"


def key_id_of(cookie: str) -> str | None:
    """The key a cookie claims to be for (not yet checked)."""
    parts = cookie.split(".")
    return parts[0] if len(parts) == 3 and parts[0].startswith("key_") else None


def open_session(cookie: str, key_hash: str, now: float) -> Session | None:
    """The session, if ``cookie`` was signed for this key and has not expired."""
    try:
        key_id, expires, mac = cookie.split(".")
        expires_at = int(expires)
    except ValueError:
        return None
    if expires_at <= now:
        return None
    if not hmac.compare_digest(mac, _mac(key_hash, "session", f"{key_id}.{expires}")):
        return None
    return Session(key_id, cookie, _mac(key_hash, "csrf", cookie)[:40])


def csrf_ok(session: Session, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(session.csrf, token)
