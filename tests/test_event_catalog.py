"""The event-type catalog through the API, on both engines: put, read, list, delete; schemas
checked when put and events' data checked against them at ingest (422 naming the place);
``DISPATCHER_REQUIRE_EVENT_TYPES``; and a change made through one API process enforced by
another within a second."""

from __future__ import annotations

import time

import httpx
import pytest

from .conftest import ADMIN_TOKEN
from .harness import ApiProcess, poll

INVOICE = {"type": "object", "required": ["id", "amount"],
           "properties": {"id": {"type": "string"},
                          "amount": {"type": "integer", "minimum": 0},
                          "lines": {"type": "array", "items": {
                              "type": "object", "required": ["sku"]}}}}


def _error(answer, status, code):
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    return error["message"]


def _put(admin, event_type, **body):
    return admin.put(f"/v1/event-types/{event_type}", json=body)


def _post(client, event_type, data):
    return client.post("/v1/events", json={"type": event_type, "data": data})


def test_put_read_list_and_delete(admin, client_for):
    made = _put(admin, "invoice.paid", description="An invoice was paid.", schema=INVOICE,
                example={"id": "in_1", "amount": 5})
    assert made.status_code == 201, made.text
    entry = made.json()
    assert (entry["type"], entry["description"], entry["schema"], entry["deprecated"],
            entry["example"]) == ("invoice.paid", "An invoice was paid.", INVOICE, False,
                                  {"id": "in_1", "amount": 5})
    again = _put(admin, "invoice.paid", deprecated=True)
    assert again.status_code == 200, again.text
    # PUT says the whole entry: what was left out is back to its default.
    assert (again.json()["schema"], again.json()["deprecated"],
            again.json()["description"]) == (None, True, "")
    assert again.json()["created_at"] == entry["created_at"]
    assert _put(admin, "user.created").status_code == 201
    publisher = client_for(admin.post("/v1/api-keys", json={
        "role": "publisher", "name": "p"}).json()["key"])
    for reader in (admin, publisher):
        shown = reader.get("/v1/event-types", params={"order": "asc"}).json()
        assert [t["type"] for t in shown["data"]] == ["invoice.paid", "user.created"]
        assert reader.get("/v1/event-types/invoice.paid").json()["deprecated"] is True
    first = admin.get("/v1/event-types", params={"limit": 1}).json()
    assert [t["type"] for t in first["data"]] == ["user.created"]
    rest = admin.get("/v1/event-types", params={"limit": 1, "cursor": first["next_cursor"]})
    assert [t["type"] for t in rest.json()["data"]] == ["invoice.paid"]
    _error(publisher.put("/v1/event-types/x.y", json={}), 403, "forbidden")
    _error(publisher.delete("/v1/event-types/user.created"), 403, "forbidden")
    assert admin.delete("/v1/event-types/user.created").status_code == 204
    _error(admin.get("/v1/event-types/user.created"), 404, "not_found")
    _error(admin.delete("/v1/event-types/user.created"), 404, "not_found")
    _error(admin.get("/v1/event-types/no..such"), 404, "not_found")
    assert [t["type"] for t in admin.get("/v1/event-types").json()["data"]] == [
        "invoice.paid"]
    # A deleted type's name makes a new entry.
    assert _put(admin, "user.created").status_code == 201


@pytest.mark.parametrize(("body", "code", "part"), [
    ({"schema": {"type": "nope"}}, "invalid_schema", "not a valid JSON Schema"),
    ({"schema": {"minimum": "zero"}}, "invalid_schema", "not a valid JSON Schema"),
    ({"schema": {"$ref": "http://127.0.0.1:9/schema.json"}}, "invalid_schema",
     "schema.$ref: only references inside the schema"),
    ({"schema": {"properties": {"a": {"$ref": "other.json#/x"}}}}, "invalid_schema",
     "schema.properties.a.$ref"),
    ({"schema": {"description": "x" * 70_000}}, "invalid_schema", "larger than 64 KiB"),
    ({"schema": INVOICE, "example": {"id": "in_1", "amount": -1}}, "schema_mismatch",
     "example.amount: -1 is less than the minimum of 0"),
    ({"schema": [1]}, "validation_error", "schema"),
    ({"deprecated": "yes"}, "validation_error", "deprecated"),
    ({"colour": "red"}, "validation_error", "colour"),
])
def test_what_cannot_be_put_is_refused_with_why(admin, body, code, part):
    assert part in _error(_put(admin, "invoice.paid", **body), 422, code)
    _error(admin.get("/v1/event-types/invoice.paid"), 404, "not_found")


@pytest.mark.parametrize(("name", "code"), [("dispatcher.delivery.failed", "reserved_event_type"),
                                            ("bad name", "validation_error"),
                                            ("a.", "validation_error")])
def test_names_that_cannot_be_catalogued(admin, name, code):
    _error(_put(admin, name), 422, code)


@pytest.mark.parametrize(("data", "place"), [
    ({"amount": 5}, "data: \"id\" is a required property"),
    ({"id": "in_1", "amount": -3}, "data.amount: -3 is less than the minimum of 0"),
    ({"id": 7, "amount": 1}, "data.id: 7 is not of type \"string\""),
    ({"id": "in_1", "amount": 1, "lines": [{"sku": "a"}, {}]},
     "data.lines[1]: \"sku\" is a required property"),
])
def test_events_that_do_not_match_their_schema_are_refused_naming_the_place(admin, data,
                                                                            place):
    assert _put(admin, "invoice.paid", schema=INVOICE).status_code == 201
    message = _error(_post(admin, "invoice.paid", data), 422, "schema_mismatch")
    assert message.startswith(place) and "invoice.paid" in message, message
    assert admin.get("/v1/events", params={"type": "invoice.paid"}).json()["data"] == []
    # Matching data, other types, and the same data once the schema is gone: accepted.
    assert _post(admin, "invoice.paid", {"id": "in_1", "amount": 0}).status_code == 202
    assert _post(admin, "invoice.voided", data).status_code == 202
    assert admin.delete("/v1/event-types/invoice.paid").status_code == 204
    assert _post(admin, "invoice.paid", data).status_code == 202


def test_required_event_types(serve):
    with serve(require_event_types=True) as admin:
        message = _error(_post(admin, "user.created", {}), 422, "unknown_event_type")
        assert message.startswith("type: user.created is not in the event-type catalog")
        assert _put(admin, "user.created", deprecated=True).status_code == 201
        assert _post(admin, "user.created", {"anything": 1}).status_code == 202


def test_a_change_through_one_api_process_holds_in_another_within_a_second(
        database_url, tmp_path):
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    one, other = (ApiProcess(database_url, tmp_path / f"api{i}.log").start() for i in (1, 2))
    try:
        with httpx.Client(headers=admin, timeout=10) as client:
            bad = {"type": "invoice.paid", "data": {"amount": -1}}
            # The other process has read the (empty) catalog already.
            assert client.post(other.url + "/v1/events", json=bad).status_code == 202
            put = client.put(one.url + "/v1/event-types/invoice.paid",
                             json={"schema": INVOICE})
            assert put.status_code == 201, put.text
            changed = time.monotonic()
            poll(lambda: client.post(other.url + "/v1/events", json=bad).status_code == 422,
                 5, 0.02, message="the schema enforced by the other process")
            assert time.monotonic() - changed <= 1.0
            assert client.delete(one.url + "/v1/event-types/invoice.paid").status_code == 204
            changed = time.monotonic()
            poll(lambda: client.post(other.url + "/v1/events", json=bad).status_code == 202,
                 5, 0.02, message="the deletion seen by the other process")
            assert time.monotonic() - changed <= 1.0
    finally:
        for process in (one, other):
            process.stop()
