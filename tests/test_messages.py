"""Error messages in plain words: what a field must be, never pydantic's phrasing.

Through a real server on each engine, a table of bad bodies and parameters: each answer is
the error envelope with the documented status and code, and its ``message`` says what is
wrong in plain words ("type: is required", "limit: must be at least 1"), with none of
pydantic's wording ("Value error, …", "Input should be …", "Field required"). A body nested
deeper than ``MAX_JSON_DEPTH`` says so (400 ``invalid_json``), whatever its depth, rather
than "not valid JSON" or an event that cannot be read back.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dispatcher.api.limits import MAX_JSON_DEPTH, nested_too_deeply
from dispatcher.api.messages import explain, plain
from dispatcher.config import Settings

from .conftest import ADMIN_TOKEN, TEST_SETTINGS
from .databases import Databases
from .harness import AppServer

URL = "https://hooks.example.com/in"
# pydantic's and FastAPI's own words, which must not reach a client.
NOT_PLAIN = ["Value error", "Assertion failed", "Input should", "should be", "should have",
             "Field required", "Extra inputs", "valid dictionary", "pydantic", "type=",
             "For further information", "JSON decode error", "There was an error",
             "model_attributes", "Traceback"]


def nested(depth: int, kind: str = "[]") -> bytes:
    """A JSON value ``depth`` levels deep: lists, or objects whose one key holds the next."""
    if kind == "[]":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def event_with(data: bytes) -> bytes:
    """An event body whose ``data`` is the given JSON text (two levels above it)."""
    return b'{"type": "deep.data", "data": {"x": ' + data + b"}}"


# ---- the plain words, as a pure function -------------------------------------------------

@pytest.mark.parametrize(("error", "text"), [
    ({"type": "missing", "loc": ("body", "type"), "msg": "Field required"}, "is required"),
    ({"type": "extra_forbidden", "msg": "Extra inputs are not permitted"},
     "is not allowed (unknown field)"),
    ({"type": "string_type", "msg": "Input should be a valid string"}, "must be a string"),
    ({"type": "int_parsing", "msg": "Input should be a valid integer, unable to parse"},
     "must be a whole number"),
    ({"type": "bool_parsing", "msg": "Input should be a valid boolean"},
     "must be true or false"),
    ({"type": "model_attributes_type", "msg": "Input should be a valid dictionary or object"},
     "must be a JSON object"),
    ({"type": "string_too_long", "msg": "String should have at most 9 characters",
      "ctx": {"max_length": 9}}, "must have at most 9 characters"),
    ({"type": "string_too_short", "msg": "String should have at least 1 character",
      "ctx": {"min_length": 1}}, "must have at least 1 character"),
    ({"type": "too_short", "msg": "List should have at least 1 item after validation",
      "ctx": {"min_length": 1, "actual_length": 0, "field_type": "List"}},
     "must have at least 1 item"),
    ({"type": "greater_than_equal", "msg": "Input should be greater than or equal to 1",
      "ctx": {"ge": 1}}, "must be at least 1"),
    ({"type": "less_than_equal", "msg": "Input should be less than or equal to 500",
      "ctx": {"le": 500}}, "must be at most 500"),
    ({"type": "literal_error", "msg": "Input should be 'asc' or 'desc'",
      "ctx": {"expected": "'asc' or 'desc'"}}, "must be one of 'asc' or 'desc'"),
    ({"type": "datetime_from_date_parsing", "msg": "Input should be a valid datetime or date"},
     "must be a date and time, like 2025-01-31T12:00:00Z"),
    ({"type": "value_error", "msg": "Value error, at most 20 headers",
      "ctx": {"error": ValueError("at most 20 headers")}}, "at most 20 headers"),
    ({"type": "string_pattern_mismatch", "msg": "String should match pattern '^[^\\x00]*$'",
      "ctx": {"pattern": "^[^\\x00]*$"}}, "must not contain NUL characters"),
    # Types without a row of their own: pydantic's opening turned into plain words.
    ({"type": "uuid_parsing", "msg": "Input should be a valid UUID, invalid character"},
     "must be a valid UUID, invalid character"),
    ({"type": "some_new_check", "msg": "Value error, the moon is not full"},
     "the moon is not full"),
    ({"type": "set_type", "msg": "Set should have at most 3 items"},
     "must have at most 3 items"),
    # A known type whose context lacks what its row names: the general way, still plain.
    ({"type": "too_long", "msg": "List should have at most 5 items after validation"},
     "must have at most 5 items after validation"),
], ids=lambda v: v["type"] if isinstance(v, dict) else None)
def test_plain_words_for_each_kind_of_error(error, text):
    assert plain(error) == text


def test_explain_names_the_field_and_keeps_at_most_five():
    errors = [{"type": "missing", "loc": ("body", f"f{i}"), "msg": "Field required"}
              for i in range(7)]
    errors.insert(0, {"type": "dict_type", "loc": ("body",), "msg": "Input should be …"})
    said = explain(errors)
    assert said.startswith("body: must be a JSON object; f0: is required")
    assert said.count(";") == 4


# ---- nesting depth, as a pure function -----------------------------------------------------

def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@pytest.mark.parametrize(("body", "too_deep"), [
    (b'{"type": "a", "data": {}}', False),
    (nested(MAX_JSON_DEPTH), False),
    (nested(MAX_JSON_DEPTH + 1), True),
    (nested(MAX_JSON_DEPTH, "{}"), False),
    (nested(MAX_JSON_DEPTH + 1, "{}"), True),
    (nested(10_000), True),
    (b"[" * 10_000, True),  # never closed
    # Brackets inside strings do not nest, escaped quotes do not end a string.
    (b'{"x": "' + b"[" * 1000 + b'"}', False),
    (b'{"x": "\\"' + b"{" * 1000 + b'"}', False),
    (b'{"x": "\\\\", "y": ' + nested(MAX_JSON_DEPTH) + b"}", True),
    # Many brackets side by side are wide, not deep.
    (b"[" + b"[[1],{}]," * 10_000 + b"0]", False),
], ids=lambda v: repr(v)[:40] if isinstance(v, bytes) else None)
def test_nesting_depth_is_counted_on_the_text(body, too_deep):
    assert nested_too_deeply(body) is too_deep


def test_nesting_depth_agrees_with_the_parsed_value():
    # Random JSON around the limit: a deep spine with shallow siblings, mixed kinds, and
    # brackets in keys and strings. The text's count agrees with the parsed value's depth.
    chance = random.Random(12)

    def make(depth: int) -> Any:
        if depth == 0:
            return chance.choice([1, None, "[{", "]}\\", [], {}])
        kids = [make(depth - 1)] + [chance.choice([[], {}, [[0]], {"k[": "}"}, "x]"])
                                    for _ in range(chance.randint(0, 2))]
        chance.shuffle(kids)
        return kids if chance.random() < 0.5 else {f"k{i}{{": k for i, k in enumerate(kids)}

    for _ in range(200):
        value = make(chance.randint(MAX_JSON_DEPTH - 8, MAX_JSON_DEPTH + 4))
        body = json.dumps(value).encode()
        assert nested_too_deeply(body) is (_depth(value) > MAX_JSON_DEPTH), body[:80]


# ---- through a real server -----------------------------------------------------------------

@pytest.fixture(scope="module")
def server(databases: Databases) -> Iterator[AppServer]:
    settings = Settings(**{**TEST_SETTINGS, "database_url": databases.new()})
    with AppServer(settings) as app:
        yield app


@pytest.fixture(scope="module")
def client(server: AppServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"authorization": f"Bearer {ADMIN_TOKEN}"}) as made:
        yield made


def _send(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return client.request(method, path, content=body,
                              headers={"content-type": "application/json"})
    return client.request(method, path, json=body)


# (method, path, body: JSON value or raw bytes, status, code, the message or a part of it)
BAD = [
    ("POST", "/v1/events", {}, 422, "validation_error", "type: is required"),
    ("POST", "/v1/events", {"type": 5}, 422, "validation_error", "type: must be a string"),
    ("POST", "/v1/events", {"type": "a..b"}, 422, "validation_error",
     "type: must be names of letters, digits and _ joined by dots, like invoice.paid"),
    ("POST", "/v1/events", {"type": "x" * 129}, 422, "validation_error",
     "type: must have at most 128 characters"),
    ("POST", "/v1/events", {"type": "a", "data": [1]}, 422, "validation_error",
     "data: must be a JSON object"),
    ("POST", "/v1/events", {"type": "a", "colour": "red"}, 422, "validation_error",
     "colour: is not allowed (unknown field)"),
    ("POST", "/v1/events", [1], 422, "validation_error", "body: must be a JSON object"),
    ("POST", "/v1/events", b"", 422, "validation_error", "body: is required"),
    ("POST", "/v1/events", b'{"type": ', 400, "invalid_json", "not valid JSON"),
    ("POST", "/v1/events", b'{"type": "a", "data": {"x": "\xff"}}', 400, "invalid_json",
     "not UTF-8"),
    ("POST", "/v1/events", b'{"type": "a", "data": {"x": ' + b"9" * 5000 + b"}}", 400,
     "invalid_json", "a number with more than"),
    ("POST", "/v1/subscriptions", {"url": URL, "event_types": []}, 422, "validation_error",
     "event_types: give at least one pattern"),
    ("POST", "/v1/subscriptions", {"url": URL, "enabled": "maybe"}, 422, "validation_error",
     "enabled: must be true or false"),
    ("POST", "/v1/subscriptions", {"url": URL, "rate_limit_per_second": 0}, 422,
     "validation_error", "rate_limit_per_second: must be at least 1"),
    ("POST", "/v1/subscriptions", {"url": URL, "rate_limit_per_second": 1.5}, 422,
     "validation_error", "rate_limit_per_second: must be a whole number"),
    ("POST", "/v1/subscriptions", {"url": URL, "headers": {"x-team": 1}}, 422,
     "validation_error", "headers.x-team: must be a string"),
    ("POST", "/v1/subscriptions", {"url": URL, "headers": {"Host": "a"}}, 422,
     "validation_error", "headers: header 'Host' is set by dispatcher"),
    ("POST", "/v1/subscriptions", {"url": URL, "secret": "abc"}, 422, "validation_error",
     "secret: secret must start with 'whsec_'"),
    ("POST", "/v1/subscriptions", {"url": URL, "description": "a\u0000b"}, 422,
     "validation_error", "description: must not contain NUL characters"),
    ("POST", "/v1/api-keys", {"role": "god", "name": "x"}, 422, "validation_error",
     "role: must be one of 'admin', 'publisher' or 'subscriber'"),
    ("POST", "/v1/api-keys", {"role": "admin", "name": ""}, 422, "validation_error",
     "name: must have at least 1 character"),
    ("POST", "/v1/deliveries/replay", {"since": "yesterday"}, 422, "validation_error",
     "since: must be a date and time, like 2025-01-31T12:00:00Z"),
    ("POST", "/v1/deliveries/replay", {"status": "pending"}, 422, "validation_error",
     "status: must be one of 'failed' or 'succeeded'"),
    ("GET", "/v1/deliveries?limit=abc", None, 400, "invalid_parameter",
     "limit: must be a whole number"),
    ("GET", "/v1/deliveries?limit=0", None, 400, "invalid_parameter", "limit: must be at least 1"),
    ("GET", "/v1/deliveries?limit=501", None, 400, "invalid_parameter",
     "limit: must be at most 500"),
    ("GET", "/v1/deliveries?since=yesterday", None, 400, "invalid_parameter",
     "since: must be a date and time"),
    ("GET", "/v1/deliveries?status=bogus", None, 400, "invalid_parameter",
     "status: must be one of 'pending', 'succeeded', 'failed', 'held' or 'cancelled'"),
    ("GET", "/v1/events?order=sideways", None, 400, "invalid_parameter",
     "order: must be one of 'asc' or 'desc'"),
    ("GET", "/v1/deliveries?event_type=a%00b", None, 400, "invalid_parameter",
     "event_type: must not contain NUL characters"),
    # Too deep, at every depth: under the parser's recursion limit and far past it.
    ("POST", "/v1/events", event_with(nested(MAX_JSON_DEPTH)), 400, "invalid_json",
     "nested too deeply"),
    ("POST", "/v1/events", event_with(nested(300)), 400, "invalid_json", "nested too deeply"),
    ("POST", "/v1/events", event_with(nested(10_000)), 400, "invalid_json",
     "nested too deeply"),
    ("POST", "/v1/events", event_with(nested(10_000, "{}")), 400, "invalid_json",
     "nested too deeply"),
    ("POST", "/v1/subscriptions", nested(10_000), 400, "invalid_json", "nested too deeply"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "says"), BAD,
                         ids=[f"{m} {p[:30]} {repr(b)[:40]}" for m, p, b, *_ in BAD])
def test_bad_input_is_answered_in_plain_words(client, method, path, body, status, code, says):
    response = _send(client, method, path, body)
    what = f"{method} {path} -> {response.status_code} {response.text[:300]}"
    assert response.status_code == status, what
    error = response.json()["error"]
    assert error["code"] == code, what
    assert says in error["message"], what
    leaked = [words for words in NOT_PLAIN if words.lower() in error["message"].lower()]
    assert not leaked, what


def test_an_event_as_deep_as_allowed_is_accepted_and_read_back(client):
    # The whole body is MAX_JSON_DEPTH levels deep: data's value sits two levels down.
    body = event_with(nested(MAX_JSON_DEPTH - 2))
    accepted = _send(client, "POST", "/v1/events", body)
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["id"]
    read = client.get(f"/v1/events/{event_id}")
    assert read.status_code == 200, read.text[:300]
    assert _depth(read.json()["data"]) == MAX_JSON_DEPTH - 1
    listed = client.get("/v1/events", params={"type": "deep.data"})
    assert listed.status_code == 200, listed.text[:300]
    assert event_id in [e["id"] for e in listed.json()["data"]]
