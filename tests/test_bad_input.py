"""Every kind of bad input gets a clear 4xx with the error envelope, never a 500.

The API reference (docs/api.md): errors are ``{"error": {"code", "message"}}`` with the right
status, never a 500 for bad input, never a stack trace. The code's documented choices
(dispatcher/api/errors.py): malformed JSON → 400 ``invalid_json``; invalid body fields → 422
``validation_error``; invalid query, path or header parameters → 400 ``invalid_parameter``.

Most tests only send requests that are refused, so they share one server per module
(``server``: private targets allowed, default limits; ``strict_server``: private targets
refused; ``small_server``: a 1 KiB body limit). A test whose request could leave a bad row
behind (and so break later tests if the service has a bug) gets a server of its own.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from dispatcher import ids
from dispatcher.config import Settings

from .conftest import ADMIN_TOKEN, TEST_SETTINGS
from .databases import Databases
from .harness import AppServer, Receiver, poll

SMALL_LIMIT = 1024
PUBLIC_URL = "https://hooks.example.com/in"
JSON = {"content-type": "application/json"}


# ---- servers and helpers ------------------------------------------------------------------


def _settings(databases: Databases, **overrides: Any) -> Settings:
    values = {**TEST_SETTINGS, "database_url": databases.new(), **overrides}
    return Settings(**values)


@pytest.fixture(scope="module")
def server(databases: Databases) -> Iterator[AppServer]:
    with AppServer(_settings(databases)) as app:
        yield app


@pytest.fixture(scope="module")
def strict_server(databases: Databases) -> Iterator[AppServer]:
    with AppServer(_settings(databases, allow_private_targets=False)) as app:
        yield app


@pytest.fixture(scope="module")
def small_server(databases: Databases) -> Iterator[AppServer]:
    with AppServer(_settings(databases, max_payload_bytes=SMALL_LIMIT)) as app:
        yield app


@pytest.fixture
def fresh_server(make_settings: Callable[..., Settings]) -> Iterator[AppServer]:
    """A server of this test's own, for requests that might leave a bad row behind."""
    with AppServer(make_settings()) as app:
        yield app


def call(
    app: AppServer,
    method: str,
    path: str,
    *,
    key: str = ADMIN_TOKEN,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One request on a connection of its own (a refused body may close the connection)."""
    sent = {"authorization": f"Bearer {key}"} if key else {}
    sent.update(headers or {})
    with httpx.Client(base_url=app.url, timeout=30) as client:
        return client.request(method, path, headers=sent, **kwargs)


def assert_error(
    response: httpx.Response, status: int | tuple[int, ...], code: str | None = None
) -> dict[str, str]:
    """The response is the error envelope with ``status`` (and ``code``, when given)."""
    request = response.request
    what = f"{request.method} {request.url} -> {response.status_code} {response.text[:500]}"
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, what
    assert "Traceback" not in response.text, what
    assert 'File "' not in response.text, what
    assert response.headers.get("content-type", "").startswith("application/json"), what
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, what
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message"}, what
    assert isinstance(error["code"], str) and error["code"], what
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"]), what
    assert isinstance(error["message"], str) and error["message"].strip(), what
    if code is not None:
        assert error["code"] == code, what
    return error


def make_subscription(app: AppServer, **fields: Any) -> dict[str, Any]:
    response = call(app, "POST", "/v1/subscriptions", json={"url": PUBLIC_URL, **fields})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def subscription(server: AppServer) -> dict[str, Any]:
    return make_subscription(server, event_types=["never.sent"])


# ---- malformed JSON -------------------------------------------------------------------------

MALFORMED = [
    b'{"type": ',
    b"{bad}",
    b"{'type': 'a'}",
    b'{"type": "a",}',
    b"nope",
    b'{"type": "a"} trailing',
]


@pytest.mark.parametrize("path", ["/v1/events", "/v1/subscriptions", "/v1/api-keys"])
@pytest.mark.parametrize("body", MALFORMED, ids=[b.decode() for b in MALFORMED])
def test_malformed_json_is_400_invalid_json(server, path, body):
    assert_error(call(server, "POST", path, content=body, headers=JSON), 400, "invalid_json")


def test_malformed_json_on_patch_is_400_invalid_json(server, subscription):
    response = call(
        server,
        "PATCH",
        f"/v1/subscriptions/{subscription['id']}",
        content=b'{"enabled": tru',
        headers=JSON,
    )
    assert_error(response, 400, "invalid_json")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_number_literals_are_400_invalid_json(server, literal):
    # NaN and Infinity are not JSON (RFC 8259); accepting them lets an event through whose
    # body, sent byte for byte to subscribers, is not JSON either.
    body = b'{"type": "nan.check", "data": {"x": ' + literal + b"}}"
    assert_error(
        call(server, "POST", "/v1/events", content=body, headers=JSON), 400, "invalid_json"
    )


def test_body_that_is_not_utf8_is_400(server):
    body = b'{"type": "a", "data": {"x": "\xff\xfe"}}'
    assert_error(call(server, "POST", "/v1/events", content=body, headers=JSON), 400)


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "a", "data": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
        b'{"type": "a", "data": {"x": ' + b"9" * 5000 + b"}}",
    ],
    ids=["nested-5000-deep", "integer-5000-digits"],
)
def test_json_beyond_parser_limits_is_4xx(server, body):
    assert_error(call(server, "POST", "/v1/events", content=body, headers=JSON), (400, 422))


@pytest.mark.parametrize("path", ["/v1/events", "/v1/subscriptions", "/v1/api-keys"])
@pytest.mark.parametrize(
    "body",
    [b"[]", b'"x"', b"5", b"null", b"", b"true"],
    ids=["array", "string", "number", "null", "empty", "true"],
)
def test_body_that_is_not_an_object_is_422(server, path, body):
    assert_error(call(server, "POST", path, content=body, headers=JSON), 422, "validation_error")


# ---- wrong types, missing and unknown fields -------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"type": 5},
        {"type": None},
        {"type": ["a"]},
        {"type": True},
        {"data": {"x": 1}},
        {"type": "a", "data": "x"},
        {"type": "a", "data": [1, 2]},
        {"type": "a", "data": 5},
        {"type": "a", "data": None},
    ],
    ids=repr,
)
def test_event_with_wrong_types_is_422(server, body):
    assert_error(call(server, "POST", "/v1/events", json=body), 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": 3},
        {"url": None},
        {"url": ["https://hooks.example.com/in"]},
        {"url": PUBLIC_URL, "event_types": "a"},
        {"url": PUBLIC_URL, "event_types": [1]},
        {"url": PUBLIC_URL, "event_types": []},
        {"url": PUBLIC_URL, "event_types": {"a": 1}},
        {"url": PUBLIC_URL, "enabled": "maybe"},
        {"url": PUBLIC_URL, "enabled": 2},
        {"url": PUBLIC_URL, "headers": ["x-team"]},
        {"url": PUBLIC_URL, "headers": {"x-team": 1}},
        {"url": PUBLIC_URL, "headers": "x-team: a"},
        {"url": PUBLIC_URL, "description": 5},
        {"url": PUBLIC_URL, "description": "x" * 1001},
        {"url": PUBLIC_URL, "secret": 5},
        {"url": PUBLIC_URL, "rate_limit_per_second": "fast"},
        {"url": PUBLIC_URL, "rate_limit_per_second": 0},
        {"url": PUBLIC_URL, "rate_limit_per_second": -5},
        {"url": PUBLIC_URL, "rate_limit_per_second": 100_001},
        {"url": PUBLIC_URL, "rate_limit_per_second": 1.5},
    ],
    ids=lambda b: repr(b)[:60],
)
def test_subscription_with_wrong_types_is_422(server, body):
    assert_error(call(server, "POST", "/v1/subscriptions", json=body), 422, "validation_error")


@pytest.mark.parametrize(
    "body",
    [
        {"url": None},
        {"url": 3},
        {"event_types": None},
        {"event_types": "a"},
        {"headers": None},
        {"enabled": None},
        {"enabled": "maybe"},
        {"secret": None},
        {"rate_limit_per_second": 0},
    ],
    ids=repr,
)
def test_patch_with_wrong_types_or_nulls_is_422(server, subscription, body):
    response = call(server, "PATCH", f"/v1/subscriptions/{subscription['id']}", json=body)
    assert_error(response, 422, "validation_error")
    # Nothing changed.
    again = call(server, "GET", f"/v1/subscriptions/{subscription['id']}").json()
    assert again["url"] == subscription["url"]
    assert again["event_types"] == subscription["event_types"]
    assert again["enabled"] is True


@pytest.mark.parametrize(
    "body",
    [
        {"role": "root", "name": "x"},
        {"role": "ADMIN", "name": "x"},
        {"role": 1, "name": "x"},
        {"role": "admin"},
        {"name": "x"},
        {"role": "admin", "name": ""},
        {"role": "admin", "name": 5},
        {"role": "admin", "name": "x" * 201},
    ],
    ids=repr,
)
def test_api_key_with_wrong_fields_is_422(server, body):
    assert_error(call(server, "POST", "/v1/api-keys", json=body), 422, "validation_error")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/subscriptions", {"url": PUBLIC_URL, "colour": "red"}),
        ("POST", "/v1/subscriptions", {"url": PUBLIC_URL, "id": "sub_mine"}),
        ("POST", "/v1/subscriptions", {"url": PUBLIC_URL, "eventTypes": ["a"]}),
        ("POST", "/v1/events", {"type": "a", "data": {}, "extra": 1}),
        ("POST", "/v1/events", {"type": "a", "id": "evt_mine"}),
        ("POST", "/v1/api-keys", {"role": "admin", "name": "x", "scope": "all"}),
        ("POST", "/v1/api-keys", {"role": "admin", "name": "x", "key": "my-own-key-0123456789"}),
    ],
    ids=lambda v: repr(v)[:50],
)
def test_unknown_fields_are_422(server, method, path, body):
    assert_error(call(server, method, path, json=body), 422, "validation_error")


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("", {"colour": "red"}),
        ("/rotate-secret", {"grace_period_seconds": 10, "colour": "red"}),
        ("/rotate-secret", {"grace_period_seconds": -1}),
        ("/rotate-secret", {"grace_period_seconds": "soon"}),
        ("/test", {"type": "a", "colour": "red"}),
        ("/test", {"type": "a b"}),
        ("/test", {"data": "x"}),
    ],
    ids=repr,
)
def test_bad_bodies_on_subscription_actions_are_422(server, subscription, suffix, body):
    method = "PATCH" if suffix == "" else "POST"
    response = call(server, method, f"/v1/subscriptions/{subscription['id']}{suffix}", json=body)
    assert_error(response, 422, "validation_error")


# ---- event type names and subscription patterns ----------------------------------------------

BAD_TYPES = [
    "",
    "a..b",
    "a b",
    ".a",
    "a.",
    "x" * 129,
    "é",
    "a-b",
    "a/b",
    "*",
    "a.*",
    " a",
    "a.b\n",
    "a\x00",
]


@pytest.mark.parametrize("name", BAD_TYPES, ids=repr)
def test_invalid_event_type_is_422(server, name):
    response = call(server, "POST", "/v1/events", json={"type": name, "data": {}})
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("name", ["a", "A_1.b_2.C3", "x" * 128])
def test_valid_event_type_edge_cases_are_accepted(server, name):
    response = call(server, "POST", "/v1/events", json={"type": name})
    assert response.status_code == 202, response.text
    assert response.json()["type"] == name


@pytest.mark.parametrize("name", ["a..b", "a b", "é"], ids=repr)
def test_invalid_event_type_query_is_400(server, name):
    response = call(server, "GET", "/v1/events", params={"type": name})
    assert_error(response, 400, "invalid_parameter")


BAD_PATTERNS = [
    "a.*.b",
    "**",
    "a*",
    "",
    "a..b",
    ".*",
    "*.a",
    "a.",
    "a.**",
    "é.*",
    "a b",
    "x" * 129,
    "a\n",
    "a.*\n",
]


@pytest.mark.parametrize("pattern", BAD_PATTERNS, ids=repr)
def test_invalid_subscription_pattern_is_422(server, pattern):
    response = call(
        server,
        "POST",
        "/v1/subscriptions",
        json={"url": PUBLIC_URL, "event_types": ["ok.type", pattern]},
    )
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("pattern", ["a.*.b", "**", "a*"])
def test_invalid_pattern_in_patch_is_422(server, subscription, pattern):
    response = call(
        server, "PATCH", f"/v1/subscriptions/{subscription['id']}", json={"event_types": [pattern]}
    )
    assert_error(response, 422, "validation_error")


def test_too_many_patterns_is_422(server):
    patterns = [f"t{i}" for i in range(101)]
    response = call(
        server, "POST", "/v1/subscriptions", json={"url": PUBLIC_URL, "event_types": patterns}
    )
    assert_error(response, 422, "validation_error")


# ---- body size --------------------------------------------------------------------------------


def _event_body(size: int) -> bytes:
    """A valid event body of exactly ``size`` bytes."""
    head, tail = b'{"type": "big.event", "data": {"pad": "', b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_body_at_the_limit_is_accepted(small_server):
    body = _event_body(SMALL_LIMIT)
    assert len(body) == SMALL_LIMIT
    response = call(small_server, "POST", "/v1/events", content=body, headers=JSON)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("path", ["/v1/events", "/v1/subscriptions", "/v1/api-keys"])
def test_body_over_the_limit_is_413(small_server, path):
    body = _event_body(SMALL_LIMIT + 1)
    response = call(small_server, "POST", path, content=body, headers=JSON)
    assert_error(response, 413, "payload_too_large")


def test_chunked_body_over_the_limit_is_413(small_server):
    body = _event_body(4 * SMALL_LIMIT)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 512):
            yield body[start : start + 512]

    with httpx.Client(base_url=small_server.url, timeout=30) as client:
        request = client.build_request(
            "POST",
            "/v1/events",
            content=chunks(),
            headers={"authorization": f"Bearer {ADMIN_TOKEN}", **JSON},
        )
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        response = client.send(request)
    assert_error(response, 413, "payload_too_large")


def test_chunked_body_under_the_limit_is_accepted(small_server):
    body = _event_body(SMALL_LIMIT // 2)
    response = call(
        small_server, "POST", "/v1/events", content=iter([body[:100], body[100:]]), headers=JSON
    )
    assert response.status_code == 202, response.text


def test_oversized_patch_is_413(small_server):
    sub = make_subscription(small_server)
    response = call(
        small_server,
        "PATCH",
        f"/v1/subscriptions/{sub['id']}",
        json={"description": "x" * (2 * SMALL_LIMIT)},
    )
    assert_error(response, 413, "payload_too_large")


def test_body_over_the_default_256_kib_is_413(server):
    body = _event_body(256 * 1024 + 1)
    response = call(server, "POST", "/v1/events", content=body, headers=JSON)
    assert_error(response, 413, "payload_too_large")


# ---- content types ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/events", "/v1/subscriptions", "/v1/api-keys"])
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "text/json",
        "",
        "multipart/form-data; boundary=x",
    ],
)
def test_unsupported_content_type_is_415(server, path, content_type):
    body = b'{"type": "a", "url": "https://hooks.example.com/in", "role": "admin", "name": "n"}'
    response = call(server, "POST", path, content=body, headers={"content-type": content_type})
    assert_error(response, 415, "unsupported_media_type")


def test_form_body_is_415(server):
    response = call(server, "POST", "/v1/events", data={"type": "a"})
    assert response.request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert_error(response, 415, "unsupported_media_type")


def test_multipart_upload_is_415(server):
    response = call(server, "POST", "/v1/events", files={"file": ("e.json", b'{"type": "a"}')})
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON"])
def test_json_content_type_variants_are_accepted(server, content_type):
    response = call(
        server,
        "POST",
        "/v1/events",
        content=b'{"type": "ct.ok"}',
        headers={"content-type": content_type},
    )
    assert response.status_code == 202, response.text


# ---- URLs -------------------------------------------------------------------------------------

BAD_URLS = [
    "ftp://x",
    "ftp://hooks.example.com/in",
    "not a url",
    "http://",
    "https://",
    "http:///path",
    "http://exa mple.com/",
    "https://hooks.example.com/a b",
    "https://hooks.example.com/\tx",
    "https://hooks.example.com/\nx",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "//hooks.example.com/in",
    "hooks.example.com/in",
    "",
    "http://user:pw@hooks.example.com/",
    "http://hooks.example.com:99999/",
    "http://hooks.example.com:0/",
    "http://hooks.example.com:port/",
    "http://[zz]/",
]


@pytest.mark.parametrize("url", BAD_URLS, ids=repr)
def test_bad_url_is_422_invalid_url(server, url):
    response = call(server, "POST", "/v1/subscriptions", json={"url": url})
    assert_error(response, 422, "invalid_url")


def test_overlong_url_is_422(server):
    response = call(
        server, "POST", "/v1/subscriptions", json={"url": "https://hooks.example.com/" + "x" * 2100}
    )
    assert_error(response, 422)


@pytest.mark.parametrize("url", ["ftp://x", "not a url", "http://"], ids=repr)
def test_bad_url_in_patch_is_422_invalid_url(server, subscription, url):
    response = call(server, "PATCH", f"/v1/subscriptions/{subscription['id']}", json={"url": url})
    assert_error(response, 422, "invalid_url")


PRIVATE_URLS = [
    "http://127.0.0.1/x",
    "http://127.0.0.1:8000/x",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://169.254.169.254/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://localhost/",
    "http://LOCALHOST:8080/",
    "http://localhost./",
    "http://hooks.localhost/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    # Other spellings of 127.0.0.1 that resolvers accept (inet_aton forms).
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
]


@pytest.mark.parametrize("url", PRIVATE_URLS, ids=repr)
def test_private_url_is_422_when_private_targets_are_refused(strict_server, url):
    response = call(strict_server, "POST", "/v1/subscriptions", json={"url": url})
    assert_error(response, 422, "invalid_url")


def test_private_url_in_patch_is_422_when_refused(strict_server):
    sub = make_subscription(strict_server)
    response = call(
        strict_server,
        "PATCH",
        f"/v1/subscriptions/{sub['id']}",
        json={"url": "http://169.254.169.254/"},
    )
    assert_error(response, 422, "invalid_url")
    assert call(strict_server, "GET", f"/v1/subscriptions/{sub['id']}").json()["url"] == PUBLIC_URL


@pytest.mark.parametrize(
    "url", [PUBLIC_URL, "http://hooks.example.com:8080/in?x=1", "http://93.184.216.34/hook"]
)
def test_public_url_is_accepted_when_private_targets_are_refused(strict_server, url):
    response = call(strict_server, "POST", "/v1/subscriptions", json={"url": url})
    assert response.status_code == 201, response.text
    assert response.json()["url"] == url


def test_private_url_is_accepted_when_allowed(server):
    response = call(server, "POST", "/v1/subscriptions", json={"url": "http://127.0.0.1:9/x"})
    assert response.status_code == 201, response.text


# ---- secrets ----------------------------------------------------------------------------------

BAD_SECRETS = [
    "abc",
    "",
    "whsec_",
    "whsec_notbase64!!",
    "whsec_" + base64.b64encode(b"8 bytes!").decode(),
    "whsec_" + base64.b64encode(bytes(23)).decode(),
    "whsec_" + base64.b64encode(bytes(65)).decode(),
    base64.b64encode(bytes(32)).decode(),
    "WHSEC_" + base64.b64encode(bytes(32)).decode(),
]


@pytest.mark.parametrize("secret", BAD_SECRETS, ids=repr)
def test_bad_secret_is_422(server, secret):
    response = call(server, "POST", "/v1/subscriptions", json={"url": PUBLIC_URL, "secret": secret})
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("secret", ["abc", "whsec_notbase64!!"], ids=repr)
def test_bad_secret_on_rotate_or_patch_is_422(server, subscription, secret):
    path = f"/v1/subscriptions/{subscription['id']}"
    assert_error(
        call(server, "POST", f"{path}/rotate-secret", json={"secret": secret}),
        422,
        "validation_error",
    )
    assert_error(call(server, "PATCH", path, json={"secret": secret}), 422, "validation_error")


def test_good_secret_is_accepted(server):
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    response = call(server, "POST", "/v1/subscriptions", json={"url": PUBLIC_URL, "secret": secret})
    assert response.status_code == 201, response.text
    assert response.json()["secret"] == secret


# ---- subscription headers ---------------------------------------------------------------------

BAD_HEADERS = [
    {"webhook-id": "x"},
    {"Webhook-Signature": "v1,x"},
    {"webhook-timestamp": "1"},
    {"Content-Type": "x"},
    {"content-length": "1"},
    {"Host": "evil.example.com"},
    {"User-Agent": "x"},
    {"Transfer-Encoding": "chunked"},
    {"Connection": "close"},
    {"x-team": "a\r\nx-evil: 1"},
    {"x-team": "a\nb"},
    {"x-team": "a\rb"},
    {"x-team": "a\x00b"},
    {"x-team": "x" * 1025},
    {"bad name": "x"},
    {"": "x"},
    {"x:y": "x"},
    {"x-team\n": "x"},
    {"x-team\r\nx-evil": "x"},
    {f"x-{i}": "v" for i in range(21)},
]


@pytest.mark.parametrize("headers", BAD_HEADERS, ids=lambda h: repr(h)[:40])
def test_bad_subscription_headers_are_422(server, headers):
    response = call(
        server, "POST", "/v1/subscriptions", json={"url": PUBLIC_URL, "headers": headers}
    )
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize("headers", [{"webhook-id": "x"}, {"x-team": "a\r\nb"}], ids=repr)
def test_bad_subscription_headers_in_patch_are_422(server, subscription, headers):
    response = call(
        server, "PATCH", f"/v1/subscriptions/{subscription['id']}", json={"headers": headers}
    )
    assert_error(response, 422, "validation_error")


def test_non_ascii_header_value_is_refused_or_delivered(make_settings):
    """A header value the service accepts must also be sendable (else: 422 at creation)."""
    with Receiver() as receiver, AppServer(make_settings()) as app:
        response = call(
            app,
            "POST",
            "/v1/subscriptions",
            json={"url": receiver.url, "headers": {"x-team": "équipe"}},
        )
        if response.status_code != 201:
            assert_error(response, 422, "validation_error")
            return
        sub = response.json()
        assert call(app, "POST", "/v1/events", json={"type": "h.v"}).status_code == 202

        def settled() -> Any:
            rows = call(app, "GET", "/v1/deliveries", params={"subscription_id": sub["id"]}).json()[
                "data"
            ]
            return receiver.count() >= 1 or (rows and rows[0]["attempts"] >= 1)

        poll(settled, timeout=4, message="an attempt with the accepted header")


# ---- lone surrogates (valid JSON escapes that are not text) -----------------------------------


def test_lone_surrogate_in_event_data_is_4xx(server):
    body = b'{"type": "sur.check", "data": {"x": "\\ud800"}}'
    response = call(server, "POST", "/v1/events", content=body, headers=JSON)
    assert_error(response, (400, 422))


def test_lone_surrogate_in_test_request_is_4xx(server, subscription):
    body = b'{"type": "sur.check", "data": {"x": "\\udc00"}}'
    response = call(
        server, "POST", f"/v1/subscriptions/{subscription['id']}/test", content=body, headers=JSON
    )
    assert_error(response, (400, 422))


def test_lone_surrogate_in_header_value_is_4xx_and_leaves_no_row(fresh_server):
    body = b'{"url": "https://hooks.example.com/in", "headers": {"x-team": "\\ud800"}}'
    response = call(fresh_server, "POST", "/v1/subscriptions", content=body, headers=JSON)
    assert_error(response, (400, 422))
    listing = call(fresh_server, "GET", "/v1/subscriptions")
    assert listing.status_code == 200, listing.text
    assert listing.json()["data"] == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/subscriptions", b'{"url": "https://hooks.example.com/in", "description": "\\ud800"}'),
        ("/v1/api-keys", b'{"role": "admin", "name": "\\ud800"}'),
    ],
    ids=["description", "key-name"],
)
def test_lone_surrogate_in_text_fields_is_4xx(server, path, body):
    assert_error(call(server, "POST", path, content=body, headers=JSON), (400, 422))


# ---- unknown ids ------------------------------------------------------------------------------

UNKNOWN = {
    "sub": ids.new_id("sub"),
    "evt": ids.new_id("evt"),
    "dlv": ids.new_id("dlv"),
    "key": ids.new_id("key"),
}
NOT_FOUND_CASES = [
    ("GET", "/v1/subscriptions/{sub}", None),
    ("PATCH", "/v1/subscriptions/{sub}", {"description": "x"}),
    ("DELETE", "/v1/subscriptions/{sub}", None),
    ("POST", "/v1/subscriptions/{sub}/rotate-secret", {}),
    ("POST", "/v1/subscriptions/{sub}/test", {}),
    ("GET", "/v1/events/{evt}", None),
    ("GET", "/v1/events/{evt}/deliveries", None),
    ("GET", "/v1/deliveries/{dlv}", None),
    ("GET", "/v1/deliveries/{dlv}/attempts", None),
    ("POST", "/v1/deliveries/{dlv}/retry", None),
    ("DELETE", "/v1/api-keys/{key}", None),
]


@pytest.mark.parametrize(
    ("method", "template", "body"), NOT_FOUND_CASES, ids=[f"{m} {t}" for m, t, _ in NOT_FOUND_CASES]
)
@pytest.mark.parametrize("kind", ["well-formed", "garbage", "wrong-prefix"])
def test_unknown_id_is_404_not_found(server, subscription, method, template, body, kind):
    if kind == "well-formed":
        values = UNKNOWN
    elif kind == "garbage":
        values = dict.fromkeys(UNKNOWN, "nope")
    else:  # an id that exists, but of another kind
        values = dict.fromkeys(UNKNOWN, subscription["id"]) | {"sub": UNKNOWN["evt"]}
    response = call(server, method, template.format(**values), json=body)
    assert_error(response, 404, "not_found")


# ---- query parameters -------------------------------------------------------------------------

LISTS = ["/v1/subscriptions", "/v1/events", "/v1/deliveries", "/v1/api-keys"]
WRONG_PREFIX = {
    "/v1/subscriptions": "evt",
    "/v1/events": "dlv",
    "/v1/deliveries": "sub",
    "/v1/api-keys": "sub",
}


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("kind", ["zzz", "empty", "wrong-prefix", "trailing-newline", "bad-chars"])
def test_bad_cursor_is_400_invalid_cursor(server, path, kind):
    own = {
        "/v1/subscriptions": "sub",
        "/v1/events": "evt",
        "/v1/deliveries": "dlv",
        "/v1/api-keys": "key",
    }[path]
    cursor = {
        "zzz": "zzz",
        "empty": "",
        "wrong-prefix": ids.new_id(WRONG_PREFIX[path]),
        "trailing-newline": ids.new_id(own) + "\n",
        "bad-chars": own + "_" + "!" * 26,
    }[kind]
    response = call(server, "GET", path, params={"cursor": cursor})
    assert_error(response, 400, "invalid_cursor")


def test_good_cursor_is_accepted(server):
    response = call(server, "GET", "/v1/deliveries", params={"cursor": ids.new_id("dlv")})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc", "1.5", "1e3"])
def test_bad_limit_is_400_invalid_parameter(server, path, limit):
    response = call(server, "GET", path, params={"limit": limit})
    assert_error(response, 400, "invalid_parameter")


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("order", ["sideways", "", "DESC"])
def test_bad_order_is_400_invalid_parameter(server, path, order):
    response = call(server, "GET", path, params={"order": order})
    assert_error(response, 400, "invalid_parameter")


@pytest.mark.parametrize("limit", ["1", "500"])
def test_limit_bounds_are_accepted(server, limit):
    response = call(server, "GET", "/v1/deliveries", params={"limit": limit, "order": "asc"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("status", ["done", "SUCCEEDED", "", "pending,failed"])
def test_bad_delivery_status_filter_is_400(server, status):
    response = call(server, "GET", "/v1/deliveries", params={"status": status})
    assert_error(response, 400, "invalid_parameter")


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/deliveries", "since"),
        ("/v1/deliveries", "until"),
        ("/v1/events", "after"),
        ("/v1/events", "before"),
    ],
)
@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", "2024-01-01T25:00:00Z"])
def test_bad_time_filter_is_400(server, path, name, value):
    response = call(server, "GET", path, params={name: value})
    assert_error(response, 400, "invalid_parameter")


def test_good_time_filter_is_accepted(server):
    response = call(
        server,
        "GET",
        "/v1/deliveries",
        params={"since": "2024-01-01T00:00:00Z", "until": "2999-01-01T00:00:00+02:00"},
    )
    assert response.status_code == 200, response.text


def test_overlong_subscription_id_filter_is_400(server):
    response = call(server, "GET", "/v1/deliveries", params={"subscription_id": "x" * 41})
    assert_error(response, 400, "invalid_parameter")


# ---- paths, methods, headers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/nope", "/v1/nope", "/v2/events", "/v1/subscriptions/x/y", "/v1/events/x/nope"]
)
@pytest.mark.parametrize("key", [ADMIN_TOKEN, ""], ids=["admin", "no-key"])
def test_unknown_path_is_404_with_envelope(server, path, key):
    assert_error(call(server, "GET", path, key=key), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/v1/events"),
        ("DELETE", "/v1/events"),
        ("PATCH", "/v1/events"),
        ("POST", "/v1/deliveries"),
        ("PUT", "/v1/subscriptions/{sub}"),
        ("POST", "/v1/subscriptions/{sub}"),
        ("PATCH", "/v1/api-keys"),
        ("GET", "/v1/deliveries/{dlv}/retry"),
        ("POST", "/healthz"),
    ],
)
def test_wrong_method_is_405_with_envelope(server, subscription, method, path):
    path = path.format(sub=subscription["id"], dlv=UNKNOWN["dlv"])
    response = call(server, method, path)
    assert_error(response, 405, "method_not_allowed")


def test_wrong_method_with_a_body_is_405(server):
    response = call(server, "PUT", "/v1/events", json={"type": "a"})
    assert_error(response, 405, "method_not_allowed")


def test_idempotency_key_longer_than_255_is_400(server):
    response = call(
        server,
        "POST",
        "/v1/events",
        json={"type": "idem.long"},
        headers={"idempotency-key": "k" * 256},
    )
    assert_error(response, 400, "invalid_parameter")


def test_idempotency_key_of_255_is_accepted(server):
    response = call(
        server,
        "POST",
        "/v1/events",
        json={"type": "idem.ok"},
        headers={"idempotency-key": "k" * 255},
    )
    assert response.status_code == 202, response.text


def test_server_still_healthy_after_all_that(server, strict_server, small_server):
    for app in (server, strict_server, small_server):
        assert call(app, "GET", "/healthz", key="").status_code == 200
        assert call(app, "GET", "/v1/subscriptions").status_code == 200
