"""Payload filters (``dispatcher.filters``): pure decisions, as tables."""

from __future__ import annotations

import pytest

from dispatcher.filters import MAX_FILTER_BYTES, InvalidFilter, check, matches

BODY = {
    "type": "invoice.paid",
    "timestamp": "2026-12-04T12:00:00Z",
    "data": {
        "amount": 1200,
        "ratio": 0.5,
        "currency": "EUR",
        "paid": True,
        "note": None,
        "customer": {"country": "DE", "tags": ["vip", "beta"]},
        "lines": [{"sku": "a-1", "qty": 2}, {"sku": "b-2", "qty": 10}],
        "zero": 0,
    },
}


@pytest.mark.parametrize("query, wanted", [
    ({}, True),                                                   # no condition: everything
    ({"type": "invoice.paid"}, True),                             # a plain value is $eq
    ({"type": "invoice.failed"}, False),
    ({"data.currency": {"$eq": "EUR"}}, True),
    ({"data.amount": {"$gt": 1000}}, True),
    ({"data.amount": {"$gt": 1200}}, False),
    ({"data.amount": {"$gte": 1200}}, True),
    ({"data.amount": {"$lt": 1200.5}}, True),                     # int against float
    ({"data.amount": {"$lte": 1199}}, False),
    ({"data.amount": 1200.0}, True),                              # 1200 equals 1200.0
    ({"data.amount": {"$gt": 1000, "$lt": 2000}}, True),          # all operators hold
    ({"data.amount": {"$gt": 1000, "$lt": 1100}}, False),
    # Type mismatches do not match, and never raise.
    ({"data.currency": {"$gt": 5}}, False),                       # a string against a number
    ({"data.amount": {"$gt": "1000"}}, False),                    # a number against a string
    ({"data.amount": "1200"}, False),
    ({"data.customer": {"$lt": 3}}, False),                       # an object against a number
    ({"data.note": {"$gt": 0}}, False),                           # null is not ordered
    ({"data.paid": 1}, False),                                    # true is not 1
    ({"data.zero": False}, False),                                # 0 is not false
    ({"data.paid": True}, True),
    ({"data.currency": {"$gte": "EUR", "$lt": "EUS"}}, True),     # strings order as text
    # null and missing fields.
    ({"data.note": None}, True),
    ({"data.missing": None}, True),                               # null equals missing
    ({"data.missing": {"$ne": None}}, False),
    ({"data.currency": {"$ne": None}}, True),
    ({"data.missing": {"$exists": False}}, True),
    ({"data.note": {"$exists": True}}, True),                     # present, though null
    ({"data.missing": {"$gt": 0}}, False),
    ({"data.missing": {"$ne": 5}}, True),
    ({"data.missing.deeper": 1}, False),
    ({"data.amount.deeper": 1}, False),                           # a path through a number
    # Lists.
    ({"data.customer.tags": "vip"}, True),                        # a list holds the value
    ({"data.customer.tags": ["vip", "beta"]}, True),              # or equals it
    ({"data.customer.tags": ["beta", "vip"]}, False),             # in its order
    ({"data.customer.tags": {"$in": ["beta", "alpha"]}}, True),
    ({"data.customer.tags": {"$nin": ["beta"]}}, False),
    ({"data.lines.sku": "b-2"}, True),                            # each element looked into
    ({"data.lines.qty": {"$gt": 5}}, True),
    ({"data.lines.qty": {"$gt": 50}}, False),
    ({"data.lines.0.sku": "a-1"}, True),                          # by index
    ({"data.lines.1.sku": "a-1"}, False),
    ({"data.lines.5.sku": "a-1"}, False),                         # past the end
    ({"data.currency": {"$in": ["USD", "EUR"]}}, True),
    ({"data.currency": {"$in": []}}, False),
    ({"data.currency": {"$nin": ["USD", "GBP"]}}, True),
    ({"data.missing": {"$in": [None]}}, True),
    ({"data.missing": {"$nin": ["x"]}}, True),
    ({"data.customer": {"country": "DE", "tags": ["vip", "beta"]}}, True),  # a whole object
    ({"data.customer": {"country": "DE"}}, False),                # not a part of one
    # Logic.
    ({"$and": [{"data.currency": "EUR"}, {"data.amount": {"$gt": 100}}]}, True),
    ({"$and": [{"data.currency": "EUR"}, {"data.amount": {"$gt": 5000}}]}, False),
    ({"$or": [{"data.currency": "USD"}, {"data.customer.country": "DE"}]}, True),
    ({"$or": [{"data.currency": "USD"}, {"data.customer.country": "FR"}]}, False),
    ({"$not": {"data.currency": "USD"}}, True),
    ({"$not": {"data.currency": "EUR"}}, False),
    ({"data.amount": {"$not": {"$gt": 5000}}}, True),
    ({"data.amount": {"$not": {"$gt": 5}}}, False),
    ({"data.currency": {"$not": {"$gt": 5}}}, True),              # mismatched types: not matched
    ({"type": "invoice.paid", "data.currency": "USD"}, False),    # fields are all required
])
def test_matches(query, wanted):
    check(query)
    assert matches(query, BODY) is wanted


DEEP = {"data.a": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {
    "$gt": 1}}}}}}}}}


@pytest.mark.parametrize("query, place, why", [
    ([], "filter", "must be a JSON object"),
    ("data.x", "filter", "must be a JSON object"),
    ({"data.a": {"$regex": "x"}}, "filter.data.a.$regex", "unknown operator"),
    ({"$where": "1"}, "filter.$where", "unknown operator"),
    ({"data.a": {"$and": [{}]}}, "filter.data.a.$and", "goes at the top"),
    ({"data.a": {"$gt": True}}, "filter.data.a.$gt", "must be a number or a string"),
    ({"data.a": {"$lt": None}}, "filter.data.a.$lt", "must be a number or a string"),
    ({"data.a": {"$gte": [1]}}, "filter.data.a.$gte", "must be a number or a string"),
    ({"data.a": {"$in": 5}}, "filter.data.a.$in", "must be a list"),
    ({"data.a": {"$nin": "x"}}, "filter.data.a.$nin", "must be a list"),
    ({"data.a": {"$exists": 1}}, "filter.data.a.$exists", "must be true or false"),
    ({"data.a": {"$not": 5}}, "filter.data.a.$not", "must be an object of operators"),
    ({"data.a": {"$not": {"b": 1}}}, "filter.data.a.$not", "must be an object of operators"),
    ({"data.a": {"$gt": 1, "b": 2}}, "filter.data.a", "mixes operators and field names"),
    ({"$and": []}, "filter.$and", "non-empty list"),
    ({"$or": {"a": 1}}, "filter.$or", "non-empty list"),
    ({"$or": [{"a": 1}, {"b": {"$bad": 1}}]}, "filter.$or[1].b.$bad", "unknown operator"),
    ({"$not": [1]}, "filter.$not", "must be a JSON object"),
    ({"data..a": 1}, "filter.data..a", "a name between each dot"),
    ({"": 1}, "filter.", "a name between each dot"),
    (DEEP, "filter", "9 levels deep"),
    ({"data.a": {"$in": ["x" * 100] * 90}}, "filter", f"at most {MAX_FILTER_BYTES:,}"),
])
def test_check_names_the_place(query, place, why):
    with pytest.raises(InvalidFilter) as refused:
        check(query)
    assert refused.value.place == place
    assert why in refused.value.why
    assert str(refused.value).startswith(place + ": ")


def test_eight_levels_are_allowed():
    query = {"data.a": {"$not": {"$not": {"$not": {"$not": {"$not": {"$not": {
        "$gt": 1}}}}}}}}
    check(query)
    assert matches(query, {"data": {"a": 2}}) is True  # six negations: as if none


def test_an_odd_body_never_raises():
    query = {"data.a.b": {"$gt": 1}, "data.c": {"$in": [1, "x", None, [1], {"k": 1}]}}
    check(query)
    for body in (None, 5, "text", [], [1, 2], {"data": None}, {"data": [None, 3, "x"]},
                 {"data": {"a": [[1, 2], {"b": "x"}], "c": {"k": 1}}}):
        assert matches(query, body) in (True, False)
