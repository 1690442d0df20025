"""Subscription signing secrets at rest: sealed with authenticated encryption.

With ``DISPATCHER_SECRET_KEY`` set (one or more Fernet keys, comma-separated, newest first),
every signing secret is stored as ``sealed:v1:<Fernet token>`` (AES-128-CBC + HMAC-SHA256,
from the ``cryptography`` package). The first key seals; every key opens, so keys can be
rotated: put the new key first, run ``dispatcher secrets reseal``, then drop the old one.
Without a key, secrets are stored as given (and sealed ones cannot be read).
API keys are never stored at all, only their SHA-256.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

PREFIX = "sealed:v1:"


class SealingError(Exception):
    """A sealed secret could not be opened (no key, or the wrong keys)."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def parse_keys(value: str | None) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in (value or "").split(",") if k.strip())
    for key in keys:
        Fernet(key)  # ValueError: not 32 url-safe base64-encoded bytes
    return keys


class SecretBox:
    def __init__(self, keys: Sequence[str] = ()) -> None:
        self._fernet = MultiFernet([Fernet(k) for k in keys]) if keys else None

    def seal(self, secret: str) -> str:
        if self._fernet is None or secret.startswith(PREFIX):
            return secret
        return PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored
        if self._fernet is None:
            raise SealingError("a signing secret is sealed; set DISPATCHER_SECRET_KEY")
        try:
            return self._fernet.decrypt(stored[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise SealingError("a signing secret does not open with DISPATCHER_SECRET_KEY") \
                from None

    def reseal(self, stored: str) -> str:
        """Sealed with the newest key (plain secrets get sealed)."""
        return self.seal(self.open(stored))
