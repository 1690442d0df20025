"""dispatcher.signing and sender.request_headers: Standard Webhooks 1.0 signatures.

Contract (API.md, "What a subscriber receives"): headers webhook-id (the event id),
webhook-timestamp (unix seconds), webhook-signature (`v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`, one per valid secret, space-separated), content-type
application/json, user-agent dispatcher/<version>, plus the subscription's headers. Any PyPI
`standardwebhooks` `Webhook(secret).verify(body, headers)` must accept it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

import dispatcher
from dispatcher.sender import USER_AGENT, request_headers
from dispatcher.signing import (
    SECRET_PREFIX,
    generate_secret,
    secret_key,
    signature,
    signature_header,
)

MSG_ID = "evt_01jd5m0000000000000000000a"
SIG_TOKEN = re.compile(r"^v1,[A-Za-z0-9+/]{43}=$")  # base64 of a 32-byte HMAC-SHA256


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def body_of(event_type: str, data: object) -> bytes:
    return json.dumps(
        {"type": event_type, "timestamp": "2025-01-01T12:00:00Z", "data": data},
        separators=(",", ":"), ensure_ascii=False,
    ).encode()


def expected_sig(key: bytes, msg_id: str, ts: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + b64(mac)


# --------------------------------------------------------------------------- secrets

def test_generate_secret_format():
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert SECRET_PREFIX == "whsec_"
    encoded = secret[len("whsec_"):]
    assert re.fullmatch(r"[A-Za-z0-9+/]{43}=", encoded)
    raw = base64.b64decode(encoded, validate=True)
    assert len(raw) == 32
    assert secret_key(secret) == raw


def test_generate_secret_is_random():
    secrets = {generate_secret() for _ in range(500)}
    assert len(secrets) == 500


@pytest.mark.parametrize("nbytes", [24, 32, 48, 64])
def test_secret_key_accepts_whsec_base64(nbytes):
    raw = bytes(range(nbytes))
    assert secret_key("whsec_" + b64(raw)) == raw


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        "abc",
        b64(bytes(32)),  # no prefix
        "WHSEC_" + b64(bytes(32)),  # prefix is case-sensitive
        "whsec" + b64(bytes(32)),
        "sk_" + b64(bytes(32)),
        "whsec_!!!!" + b64(bytes(32)),  # not base64
        "whsec_" + b64(bytes(32)) + " ",
        "whsec_" + b64(bytes(32))[:-1],  # broken padding
        "whsec_" + b64(bytes(16)),  # too short
        "whsec_" + b64(bytes(23)),
        "whsec_" + b64(bytes(65)),  # too long
        "whsec_" + b64(bytes(128)),
    ],
    ids=lambda s: repr(s[:24]) + f"..len{len(s)}",
)
def test_secret_key_rejects(secret):
    with pytest.raises(ValueError):
        secret_key(secret)


# --------------------------------------------------------------------------- signatures

@pytest.mark.parametrize("nkeys", [1, 2, 3])
def test_signature_header_one_token_per_key(nkeys):
    keys = [bytes([i]) * 32 for i in range(1, nkeys + 1)]
    header = signature_header(keys, MSG_ID, 1700000000, b'{"a":1}')
    tokens = header.split(" ")
    assert len(tokens) == nkeys
    assert all(SIG_TOKEN.match(t) for t in tokens)
    assert tokens == [expected_sig(k, MSG_ID, 1700000000, b'{"a":1}') for k in keys]


@pytest.mark.parametrize(
    ("msg_id", "ts", "body"),
    [
        (MSG_ID, 1700000000, b"{}"),
        ("msg_2", 0, b""),
        (MSG_ID, 1735732800, "{\"data\":\"caf\u00e9 \u2603\"}".encode()),
        (MSG_ID, 1735732800, b'{"a":"line\\nbreak","b":[1,2,3]}'),
    ],
)
def test_signature_is_hmac_sha256_of_id_timestamp_body(msg_id, ts, body):
    key = b"k" * 32
    assert signature(key, msg_id, ts, body) == expected_sig(key, msg_id, ts, body)


# --------------------------------------------------------------------------- request_headers

PAYLOADS = [
    body_of("invoice.paid", {"id": "in_1", "amount": 4200}),
    body_of("user.created", {}),
    body_of("a.b", {"name": "Zo\u00eb \u00e5\u00df \u4e2d\u6587 \U0001f600", "n": None}),
    body_of("x", {"nested": {"list": [1, 2.5, True, None, "s"]}, "quote": "\"\\/"}),
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=["invoice", "empty", "unicode", "nested"])
def test_headers_verify_with_standardwebhooks_one_secret(payload):
    secret = generate_secret()
    headers = request_headers(MSG_ID, [secret_key(secret)], payload, {}, int(time.time()))
    assert Webhook(secret).verify(payload, headers) == json.loads(payload)


@pytest.mark.parametrize("payload", PAYLOADS, ids=["invoice", "empty", "unicode", "nested"])
def test_headers_verify_with_standardwebhooks_two_secrets(payload):
    old, new, unrelated = generate_secret(), generate_secret(), generate_secret()
    headers = request_headers(
        MSG_ID, [secret_key(new), secret_key(old)], payload, {"x-team": "billing"},
        int(time.time()),
    )
    assert Webhook(new).verify(payload, headers) == json.loads(payload)
    assert Webhook(old).verify(payload, headers) == json.loads(payload)
    with pytest.raises(WebhookVerificationError):
        Webhook(unrelated).verify(payload, headers)


def test_headers_verify_after_http_round_trip_casing():
    """Receivers see header names in any case (and via httpx.Headers)."""
    secret = generate_secret()
    payload = PAYLOADS[0]
    headers = request_headers(MSG_ID, [secret_key(secret)], payload, {}, int(time.time()))
    as_sent = dict(httpx.Headers(headers).items())
    title_case = {k.title(): v for k, v in headers.items()}
    assert Webhook(secret).verify(payload, as_sent) == json.loads(payload)
    assert Webhook(secret).verify(payload, title_case) == json.loads(payload)


@pytest.mark.parametrize(
    "tamper",
    ["body", "id", "timestamp", "signature", "no-signature"],
)
def test_tampered_request_does_not_verify(tamper):
    secret = generate_secret()
    payload = PAYLOADS[0]
    ts = int(time.time())
    headers = request_headers(MSG_ID, [secret_key(secret)], payload, {}, ts)
    if tamper == "body":
        payload = payload.replace(b"4200", b"4201")
    elif tamper == "id":
        headers["webhook-id"] = MSG_ID[:-1] + "b"
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(ts + 1)
    elif tamper == "signature":
        headers["webhook-signature"] = "v1," + b64(b"\0" * 32)
    else:
        del headers["webhook-signature"]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(payload, headers)


def test_stale_timestamp_does_not_verify():
    """The timestamp is the one signed and sent; the library refuses one 10 minutes old."""
    secret = generate_secret()
    payload = PAYLOADS[0]
    headers = request_headers(MSG_ID, [secret_key(secret)], payload, {}, int(time.time()) - 600)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(payload, headers)


@pytest.mark.parametrize("nkeys", [1, 2])
def test_header_names_and_values_exactly_per_contract(nkeys):
    keys = [bytes([i]) * 32 for i in range(1, nkeys + 1)]
    payload = PAYLOADS[0]
    ts = 1735732800
    headers = request_headers(MSG_ID, keys, payload, {}, ts)
    assert set(headers) == {
        "webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent",
    }
    assert headers["webhook-id"] == MSG_ID
    assert headers["webhook-timestamp"] == "1735732800"
    assert re.fullmatch(r"[0-9]+", headers["webhook-timestamp"])
    assert headers["webhook-signature"] == " ".join(
        expected_sig(k, MSG_ID, ts, payload) for k in keys
    )
    assert all(SIG_TOKEN.match(t) for t in headers["webhook-signature"].split(" "))
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"dispatcher/{dispatcher.__version__}"
    assert USER_AGENT == f"dispatcher/{dispatcher.__version__}"
    assert all(isinstance(v, str) for v in headers.values())


def test_webhook_id_is_the_same_for_every_attempt():
    """Same event, different attempts (timestamps): same webhook-id, different signature."""
    key = b"s" * 32
    first = request_headers(MSG_ID, [key], PAYLOADS[0], {}, 1735732800)
    retry = request_headers(MSG_ID, [key], PAYLOADS[0], {}, 1735732805)
    assert first["webhook-id"] == retry["webhook-id"] == MSG_ID
    assert first["webhook-timestamp"] != retry["webhook-timestamp"]
    assert first["webhook-signature"] != retry["webhook-signature"]


@pytest.mark.parametrize(
    "extra",
    [
        {"x-team": "billing"},
        {"X-Team": "billing", "authorization": "Bearer abc"},
        {f"x-h{i}": str(i) for i in range(20)},
    ],
)
def test_extra_headers_are_included(extra):
    secret = generate_secret()
    headers = request_headers(MSG_ID, [secret_key(secret)], PAYLOADS[0], extra,
                              int(time.time()))
    for name, value in extra.items():
        assert headers[name] == value
    assert Webhook(secret).verify(PAYLOADS[0], headers) == json.loads(PAYLOADS[0])


RESERVED = ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type",
            "user-agent"]


@pytest.mark.parametrize(
    "name",
    RESERVED + ["Webhook-Id", "WEBHOOK-TIMESTAMP", "Webhook-Signature", "Content-Type",
                "User-Agent"],
)
def test_extra_headers_never_override_standard_headers(name):
    """Whatever the case of the name, the request carries exactly one value for each of the
    contract's headers, and it is dispatcher's (HTTP header names are case-insensitive)."""
    secret = generate_secret()
    ts = int(time.time())
    payload = PAYLOADS[0]
    clean = request_headers(MSG_ID, [secret_key(secret)], payload, {}, ts)
    headers = request_headers(MSG_ID, [secret_key(secret)], payload, {name: "v1,evil"}, ts)
    on_the_wire = httpx.Headers(headers)
    for reserved in RESERVED:
        assert on_the_wire.get_list(reserved) == [clean[reserved]], reserved
    assert Webhook(secret).verify(payload, headers) == json.loads(payload)


# ---- v1a: Ed25519 -------------------------------------------------------------------------

def _seed(n: int = 32) -> bytes:
    return bytes(range(n))


def test_a_v1a_key_is_shown_as_its_public_key():
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from dispatcher.signing import scheme_of, shown

    private = Ed25519PrivateKey.from_private_bytes(_seed())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    whsk = "whsk_" + base64.b64encode(_seed()).decode()
    assert shown(whsk) == "whpk_" + base64.b64encode(public).decode()
    assert shown("whsec_abc") == "whsec_abc"  # a shared secret is what receivers use
    assert (scheme_of(whsk), scheme_of("whsec_abc")) == ("v1a", "v1")
    fresh = generate_secret("v1a")
    assert fresh.startswith("whsk_") and len(base64.b64decode(fresh[5:])) == 32
    assert generate_secret("v1").startswith("whsec_")


@pytest.mark.parametrize("secret, says", [
    ("whsk_" + base64.b64encode(_seed(31)).decode(), "32 bytes"),
    ("whsk_" + base64.b64encode(_seed(33)).decode(), "32 bytes"),
    ("whsk_" + base64.b64encode(_seed(64)).decode(), "must end with the public key"),
    ("whsk_not base64!", "followed by base64"),
    ("whpk_" + base64.b64encode(_seed()).decode(), "must start with"),
])
def test_secret_key_rejects_bad_v1a_keys(secret, says):
    with pytest.raises(ValueError, match=says):
        secret_key(secret)


def test_v1a_signature_verifies_with_cryptography_and_only_with_its_key():
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = secret_key("whsk_" + base64.b64encode(_seed()).decode())
    sig = signature(key, "msg_1", 1_700_000_000, b'{"a":1}')
    version, _, value = sig.partition(",")
    assert version == "v1a"
    public = Ed25519PrivateKey.from_private_bytes(_seed()).public_key()
    public.verify(base64.b64decode(value), b'msg_1.1700000000.{"a":1}')
    with pytest.raises(InvalidSignature):
        public.verify(base64.b64decode(value), b'msg_1.1700000000.{"a":2}')
    other = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    with pytest.raises(InvalidSignature):
        other.verify(base64.b64decode(value), b'msg_1.1700000000.{"a":1}')
