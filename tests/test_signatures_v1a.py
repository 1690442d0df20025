"""Ed25519 signatures (Standard Webhooks v1a) end to end, on both engines: the receiver
verifies every request with ``cryptography``'s Ed25519 and the public key the API showed,
before, during and after a rotation; the private key is never shown."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from standardwebhooks import Webhook

from .harness import Receiver, poll
from .test_delivery import publish, subscribe


def _public(whpk: str) -> Ed25519PublicKey:
    assert whpk.startswith("whpk_"), whpk
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(whpk[len("whpk_"):]))


def _verifies(key: Ed25519PublicKey, request) -> list[bool]:
    """For each signature of the request, whether ``key`` verifies it (v1a only)."""
    signed = b"%s.%s.%s" % (request.headers["webhook-id"].encode(),
                            request.headers["webhook-timestamp"].encode(), request.body)
    found = []
    for part in request.headers["webhook-signature"].split(" "):
        version, _, value = part.partition(",")
        assert version == "v1a", request.headers["webhook-signature"]
        try:
            key.verify(base64.b64decode(value), signed)
            found.append(True)
        except InvalidSignature:
            found.append(False)
    return found


def _next(admin, receiver, event_type="order.paid"):
    before = receiver.count()
    publish(admin, event_type, {"n": before})
    poll(lambda: receiver.count() > before or None, 15, message="the request arrived")
    return receiver.requests[-1]


def test_v1a_requests_verify_with_the_public_key_through_a_rotation(admin):
    with Receiver() as receiver:
        sub = subscribe(admin, receiver.url, signature_scheme="v1a")
        assert sub["signature_scheme"] == "v1a"
        first = _public(sub["secret"])
        assert _verifies(first, _next(admin, receiver)) == [True]

        rotated = admin.post(f"/v1/subscriptions/{sub['id']}/rotate-secret",
                             json={"grace_period_seconds": 3})
        assert rotated.status_code == 200, rotated.text
        second = _public(rotated.json()["secret"])
        assert rotated.json()["secret"] != sub["secret"]
        # During the grace period: one signature per key, each verifying with its own only.
        during = _next(admin, receiver)
        assert _verifies(second, during) == [True, False]
        assert _verifies(first, during) == [False, True]

        time.sleep(3.2)
        after = _next(admin, receiver)
        assert _verifies(second, after) == [True]
        assert _verifies(first, after) == [False]
        # Nothing signed with HMAC: a v1 verifier finds no signature of its own.
        with pytest.raises(Exception):  # noqa: B017, PT011 - the library's own error type
            Webhook(base64.b64encode(b"x" * 32).decode()).verify(after.body, after.headers)


def test_a_given_private_key_signs_and_only_its_public_key_is_shown(admin, app_server):
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes_raw()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    given = "whsk_" + base64.b64encode(seed).decode()
    with Receiver() as receiver:
        sub = subscribe(admin, receiver.url, signature_scheme="v1a", secret=given)
        assert sub["secret"] == "whpk_" + base64.b64encode(public).decode()
        assert _verifies(private.public_key(), _next(admin, receiver)) == [True]
        # The 64-byte form (seed and public key) is the same key.
        both = "whsk_" + base64.b64encode(seed + public).decode()
        patched = admin.patch(f"/v1/subscriptions/{sub['id']}", json={"secret": both})
        assert patched.status_code == 200 and patched.json()["secret"] == sub["secret"]
        shown = [admin.get(f"/v1/subscriptions/{sub['id']}").text,
                 admin.get("/v1/subscriptions").text]
        assert all("whsk_" not in text and base64.b64encode(seed).decode() not in text
                   for text in shown)


def test_changing_the_scheme_makes_a_key_of_the_new_scheme(admin):
    with Receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        assert sub["signature_scheme"] == "v1" and sub["secret"].startswith("whsec_")
        Webhook(sub["secret"]).verify(_next(admin, receiver).body,
                                      receiver.requests[-1].headers)
        changed = admin.patch(f"/v1/subscriptions/{sub['id']}",
                              json={"signature_scheme": "v1a"})
        assert changed.status_code == 200, changed.text
        assert _verifies(_public(changed.json()["secret"]), _next(admin, receiver)) == [True]
        back = admin.patch(f"/v1/subscriptions/{sub['id']}", json={"signature_scheme": "v1"})
        assert back.json()["secret"].startswith("whsec_")
        request = _next(admin, receiver)
        Webhook(back.json()["secret"]).verify(request.body, request.headers)


@pytest.mark.parametrize("fields, place", [
    ({"signature_scheme": "v2"}, "signature_scheme"),
    ({"signature_scheme": "V1A"}, "signature_scheme"),
    ({"signature_scheme": "v1a", "secret": "whsec_" + "A" * 44}, "secret"),
    ({"signature_scheme": "v1", "secret": "whsk_" + base64.b64encode(b"s" * 32).decode()},
     "secret"),
    ({"signature_scheme": "v1a", "secret": "whsk_" + base64.b64encode(b"s" * 31).decode()},
     "secret"),
    ({"signature_scheme": "v1a", "secret": "whsk_!!!"}, "secret"),
])
def test_a_scheme_and_a_secret_that_do_not_fit_are_refused(admin, fields, place):
    answer = admin.post("/v1/subscriptions", json={"url": "http://127.0.0.1:9/s", **fields})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "validation_error" and error["message"].startswith(place + ": ")


def test_a_rotation_or_change_keeps_to_the_scheme(admin):
    v1a = subscribe(admin, "http://127.0.0.1:9/r", signature_scheme="v1a")
    wrong = admin.post(f"/v1/subscriptions/{v1a['id']}/rotate-secret",
                       json={"secret": "whsec_" + base64.b64encode(b"k" * 32).decode()})
    assert wrong.status_code == 422 and wrong.json()["error"]["message"].startswith("secret:")
    for body in ({"signature_scheme": None},
                 {"secret": "whsec_" + base64.b64encode(b"k" * 32).decode()}):
        refused = admin.patch(f"/v1/subscriptions/{v1a['id']}", json=body)
        assert refused.status_code == 422, refused.text
    assert admin.get(f"/v1/subscriptions/{v1a['id']}").json()["secret"] == v1a["secret"]


def test_pages_show_the_public_key_never_the_private_one(admin, app_server):
    from .test_ui import CSRF, logged_in

    sub = subscribe(admin, "http://127.0.0.1:9/p", signature_scheme="v1a")
    with logged_in(app_server) as client:
        page = client.get(f"/ui/subscriptions/{sub['id']}").text
        assert sub["secret"][:10] in page and "whsk_" not in page and "v1a (Ed25519" in page
        rotated = client.post(f"/ui/subscriptions/{sub['id']}/rotate",
                              data={"csrf": CSRF.search(page).group(1), "grace_hours": "1"})
        assert rotated.status_code == 200 and "whsk_" not in rotated.text
        shown = admin.get(f"/v1/subscriptions/{sub['id']}").json()["secret"]
        assert shown != sub["secret"] and shown in rotated.text
