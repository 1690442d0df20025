"""Signing secrets sealed at rest; no secret in logs or error messages."""

from __future__ import annotations

import asyncio
import json

import httpx
from standardwebhooks import Webhook

from dispatcher.database import open_database
from dispatcher.sealing import PREFIX, generate_key
from dispatcher.store import Store

from .databases import rows
from .harness import Receiver, Reply, ServeProcess, poll
from .test_delivery import publish, settled, subscribe

ADMIN = {"authorization": "Bearer test-admin-token-0123456789"}


def stored_secrets(database_url: str) -> list[str]:
    found = rows(database_url, "SELECT secrets FROM subscription")
    return [e["secret"] for (value,) in found
            for e in (json.loads(value) if isinstance(value, str) else value)]


def test_secrets_are_sealed_in_the_database_and_still_sign(serve, database_url):
    key = generate_key()
    with serve(secret_key=key) as admin, Receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        rotated = admin.post(f"/v1/subscriptions/{sub['id']}/rotate-secret").json()
        stored = stored_secrets(database_url)
        assert len(stored) == 2 and all(s.startswith(PREFIX) for s in stored)
        raw = json.dumps(rows(database_url, "SELECT secrets FROM subscription")[0][0])
        for plain in (sub["secret"], rotated["secret"]):
            assert plain not in raw and plain.removeprefix("whsec_") not in raw
        assert admin.get(f"/v1/subscriptions/{sub['id']}").json()["secret"] == rotated["secret"]
        event = publish(admin)
        settled(admin, event["id"])
        got = receiver.requests[0]
        Webhook(sub["secret"]).verify(got.body, got.headers)
        Webhook(rotated["secret"]).verify(got.body, got.headers)


def test_v1a_private_keys_are_sealed_and_still_sign(serve, database_url):
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    given = "whsk_" + base64.b64encode(seed).decode()
    with serve(secret_key=generate_key()) as admin, Receiver() as receiver:
        sub = subscribe(admin, receiver.url, signature_scheme="v1a", secret=given)
        stored = stored_secrets(database_url)
        assert len(stored) == 1 and stored[0].startswith(PREFIX)
        raw = json.dumps(rows(database_url, "SELECT secrets FROM subscription")[0][0])
        assert "whsk_" not in raw and given.removeprefix("whsk_") not in raw
        settled(admin, publish(admin)["id"])
        got = receiver.requests[0]
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        version, _, value = got.headers["webhook-signature"].partition(",")
        assert version == "v1a" and sub["secret"].startswith("whpk_")
        public.verify(base64.b64decode(value), b"%s.%s.%s" % (
            got.headers["webhook-id"].encode(), got.headers["webhook-timestamp"].encode(),
            got.body))


def test_key_rotation_reseals_with_the_new_key(make_settings, database_url):
    old, new = generate_key(), generate_key()

    async def with_store(key: str, action):
        store = Store(open_database(make_settings(secret_key=key)))
        try:
            return await action(store)
        finally:
            await store.db.dispose()

    sub = asyncio.run(with_store(old, lambda s: s.create_subscription(
        "key_x", {"url": "https://example.com/x"})))
    before = stored_secrets(database_url)[0]
    assert asyncio.run(with_store(f"{new},{old}", lambda s: s.reseal_secrets())) == 1
    after = stored_secrets(database_url)[0]
    assert before != after and after.startswith(PREFIX)
    opened = asyncio.run(with_store(new, lambda s: s.get_subscription(sub["id"], None)))
    assert opened["secrets"][0]["secret"] == sub["secrets"][0]["secret"]


def test_no_secret_reaches_the_log(tmp_path, database_url):
    key = generate_key()
    server = ServeProcess(database_url, tmp_path / "serve.log", DISPATCHER_SECRET_KEY=key,
                          DISPATCHER_LOG_LEVEL="debug", DISPATCHER_RETRY_SCHEDULE="0.1",
                          DISPATCHER_DELIVERY_TIMEOUT_SECONDS="1").start()
    secrets_seen: list[str] = [key, "test-admin-token-0123456789"]
    try:
        with Receiver(lambda n, r: Reply(500, b"boom")) as receiver, \
                httpx.Client(base_url=server.url, headers=ADMIN, timeout=30) as admin:
            publisher = admin.post("/v1/api-keys", json={"role": "publisher",
                                                         "name": "p"}).json()["key"]
            secrets_seen.append(publisher)
            sub = subscribe(admin, receiver.url, headers={"x-token": "not-a-secret"})
            refused = subscribe(admin, "http://127.0.0.1:9/nothing-listens")
            rotated = admin.post(f"/v1/subscriptions/{sub['id']}/rotate-secret").json()
            secrets_seen += [sub["secret"], rotated["secret"], refused["secret"]]
            event = httpx.post(server.url + "/v1/events", json={"type": "a.b", "data": {}},
                               headers={"authorization": f"Bearer {publisher}"}).json()
            settled(admin, event["id"], 2)
            admin.post(f"/v1/subscriptions/{sub['id']}/test")
            admin.post(f"/v1/subscriptions/{refused['id']}/test")
            httpx.get(server.url + "/v1/events", headers={"authorization": "Bearer wrong-key"})
            answers = json.dumps([admin.get("/v1/deliveries").json(),
                                  admin.get("/v1/events").json()])
            poll(lambda: receiver.count() >= 2)
    finally:
        assert server.stop() == 0
    log = server.log()
    assert "POST /v1/events" in log  # the log is really there
    for secret in secrets_seen:
        for form in (secret, secret.removeprefix("whsec_")):
            assert form not in log, "a secret is in the log"
            assert form not in answers, "a secret is in an error or a list"


def test_sealed_secrets_without_the_key_are_a_clear_503(make_settings, serve):
    async def plant() -> dict:
        store = Store(open_database(make_settings(secret_key=generate_key())))
        try:
            return await store.create_subscription("key_x", {"url": "https://example.com/x"})
        finally:
            await store.db.dispose()

    sub = asyncio.run(plant())
    with serve() as admin:
        answer = admin.get(f"/v1/subscriptions/{sub['id']}")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "secret_key_missing"
