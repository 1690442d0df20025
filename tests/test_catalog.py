"""``catalog``: schemas checked and compiled, data checked with the place named, what ingest
refuses, and how a process's copy stays fresh."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher import catalog
from dispatcher.catalog import Catalog, CatalogView, InvalidSchema, catalog_of, check_schema

SCHEMA = {"type": "object", "required": ["id"],
          "properties": {"id": {"type": "string"},
                         "tags": {"type": "array", "items": {"type": "string"}},
                         "who": {"$ref": "#/$defs/person"}},
          "$defs": {"person": {"type": "object", "required": ["name"]}}}


@pytest.mark.parametrize(("schema", "part"), [
    ([], "must be a JSON Schema object"),
    ({"type": 3}, "not a valid JSON Schema"),
    ({"$ref": "https://example.com/s.json"}, "schema.$ref: only references inside"),
    ({"items": [{"$dynamicRef": "other#x"}]}, "schema.items[0].$dynamicRef"),
    ({"$ref": "#/$defs/missing"}, "not a valid JSON Schema"),
    ({"const": "x" * (64 * 1024)}, "larger than 64 KiB"),
])
def test_schemas_that_cannot_be_used(schema, part):
    with pytest.raises(InvalidSchema) as raised:
        check_schema(schema)
    assert part in str(raised.value)


@pytest.mark.parametrize(("data", "expected"), [
    ({"id": "a"}, None),
    ({"id": "a", "tags": ["x"], "who": {"name": "n"}}, None),
    ({}, 'data: "id" is a required property'),
    ({"id": 1}, 'data.id: 1 is not of type "string"'),
    ({"id": "a", "tags": ["x", 2]}, 'data.tags[1]: 2 is not of type "string"'),
    ({"id": "a", "who": {}}, 'data.who: "name" is a required property'),
])
def test_mismatch_names_the_place(data, expected):
    assert catalog.mismatch(check_schema(SCHEMA), data) == expected


def test_a_schema_is_compiled_once_whatever_its_key_order():
    one = check_schema({"type": "object", "required": ["a"]})
    assert check_schema({"required": ["a"], "type": "object"}) is one


KNOWN = catalog_of(7, [("invoice.paid", SCHEMA), ("user.created", None)])


@pytest.mark.parametrize(("event_type", "data", "require", "expected"), [
    ("invoice.paid", {"id": "in_1"}, False, None),
    ("invoice.paid", {}, False, "schema_mismatch"),
    ("user.created", {"anything": [1]}, True, None),  # in the catalog, no schema
    ("order.placed", {}, False, None),
    ("order.placed", {}, True, "unknown_event_type"),
])
def test_refusal(event_type, data, require, expected):
    refused = KNOWN.refusal(event_type, data, require)
    assert (refused and refused[0]) == expected
    if refused:
        assert event_type in refused[1]


def test_the_view_asks_the_version_at_most_every_half_second_and_reloads_on_a_change():
    asked: list[int] = []
    stored = {"version": 1}

    async def version() -> int:
        asked.append(stored["version"])
        return stored["version"]

    async def load() -> Catalog:
        return catalog_of(stored["version"], [])

    async def run() -> None:
        view = CatalogView(version, load)
        assert (await view.current()).version == 1
        # Many ingests at once, and soon after: one look.
        await asyncio.gather(*(view.current() for _ in range(20)))
        assert len(asked) == 1
        stored["version"] = 2
        assert (await view.current()).version == 1  # fresh enough still
        await asyncio.sleep(catalog.FRESH_SECONDS + 0.05)
        assert (await view.current()).version == 2
        stored["version"] = 3
        view.changed()  # this process made the change: no wait
        assert (await view.current()).version == 3

    asyncio.run(run())
