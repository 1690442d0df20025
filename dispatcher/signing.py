"""Standard Webhooks signatures: secrets, keys, headers and the signed content.

``v1``: HMAC-SHA256 with a shared ``whsec_`` secret. ``v1a``: Ed25519; the service keeps the
private key (``whsk_`` + base64 of its 32-byte seed, or of the 64-byte seed + public key
form) and shows receivers the public key (``whpk_`` + base64 of its 32 bytes). A
subscription's stored secrets are of one scheme; a request carries one signature per key
in force (the newest, and older ones in their grace period), space-separated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .vocabulary import SignatureScheme

SECRET_PREFIX = "whsec_"
PRIVATE_PREFIX = "whsk_"
PUBLIC_PREFIX = "whpk_"
SECRET_MIN_BYTES = 24
SECRET_MAX_BYTES = 64

# What signs: an HMAC key (v1) or an Ed25519 private key (v1a).
SigningKey = bytes | Ed25519PrivateKey


def generate_secret(scheme: str = SignatureScheme.V1) -> str:
    if scheme == SignatureScheme.V1A:
        return PRIVATE_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def scheme_of(secret: str) -> SignatureScheme:
    """The scheme a stored or given secret belongs to, by its prefix."""
    return SignatureScheme.V1A if secret.startswith(PRIVATE_PREFIX) else SignatureScheme.V1


def _decoded(text: str, prefix: str) -> bytes:
    try:
        return base64.b64decode(text[len(prefix):], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"secret must be '{prefix}' followed by base64") from exc


def _private_key(secret: str) -> Ed25519PrivateKey:
    raw = _decoded(secret, PRIVATE_PREFIX)
    if len(raw) not in (32, 64):
        raise ValueError("a whsk_ key must encode an Ed25519 seed of 32 bytes (or 64: the "
                         "seed and its public key)")
    key = Ed25519PrivateKey.from_private_bytes(raw[:32])
    if len(raw) == 64 and raw[32:] != _public_bytes(key):
        raise ValueError("a 64-byte whsk_ key must end with the public key of its seed")
    return key


def _public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def secret_key(secret: str) -> SigningKey:
    """What a ``whsec_`` or ``whsk_`` secret signs with; ValueError if it is neither."""
    if secret.startswith(PRIVATE_PREFIX):
        return _private_key(secret)
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("secret must start with 'whsec_' (v1) or 'whsk_' (v1a)")
    key = _decoded(secret, SECRET_PREFIX)
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise ValueError(
            f"secret must encode {SECRET_MIN_BYTES} to {SECRET_MAX_BYTES} random bytes"
        )
    return key


def shown(secret: str) -> str:
    """What a subscriber is given for a stored secret: a ``whsec_`` secret itself, for a
    ``whsk_`` private key its ``whpk_`` public key (the private key is never shown)."""
    if secret.startswith(PRIVATE_PREFIX):
        return PUBLIC_PREFIX + base64.b64encode(_public_bytes(_private_key(secret))).decode()
    return secret


def signature(key: SigningKey, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    if isinstance(key, Ed25519PrivateKey):
        return "v1a," + base64.b64encode(key.sign(signed)).decode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(keys: list[SigningKey], msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature per key in force, space-separated."""
    return " ".join(signature(k, msg_id, timestamp, body) for k in keys)
