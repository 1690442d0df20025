"""Payload filters: which events of its types a subscription wants.

A filter is a MongoDB-style query on the body a subscriber receives (``{"type",
"timestamp", "data"}``): dotted field paths, a plain value meaning ``$eq``, and the
operators ``$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $not``. Two pure
functions: ``check`` says what is wrong with one (the place, in words), ``matches`` decides
whether a body matches one, and never raises.

Why not ``mongoquery``: it compares with Python's operators, so a string against a number
raises ``TypeError`` (and ``True`` equals ``1``); it takes operators the contract does not
($regex, $where-like ones), and it cannot name the place of a mistake. The semantics here
are MongoDB's, bracketed by type: an ordering compares numbers with numbers and strings
with strings, anything else does not match; booleans are not numbers; ``null`` equals
null and a missing field; a path through a list looks at each element, and a list value
matches ``$eq`` when it equals the operand or holds it.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Iterator
from typing import Any

MAX_FILTER_BYTES = 8 * 1024
MAX_FILTER_DEPTH = 8  # objects and lists inside one another, the filter itself the first
ORDERINGS = ("$gt", "$gte", "$lt", "$lte")
FIELD_OPERATORS = frozenset({"$eq", "$ne", *ORDERINGS, "$in", "$nin", "$exists", "$not"})
LOGICAL = frozenset({"$and", "$or", "$not"})


class InvalidFilter(ValueError):
    """What is wrong with a filter, and where (``filter.data.amount.$gt``)."""

    def __init__(self, place: str, why: str) -> None:
        super().__init__(f"{place}: {why}")
        self.place = place
        self.why = why


# ---- checking ------------------------------------------------------------------------------

def check(query: Any, place: str = "filter") -> None:
    """Raise ``InvalidFilter`` naming the first place where ``query`` breaks the rules."""
    depth = _depth(query)
    if depth > MAX_FILTER_DEPTH:
        raise InvalidFilter(place, f"is nested {depth} levels deep; at most "
                                   f"{MAX_FILTER_DEPTH} are allowed")
    size = len(json.dumps(query, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_FILTER_BYTES:
        raise InvalidFilter(place, f"is {size:,} bytes as JSON; at most "
                                   f"{MAX_FILTER_BYTES:,} are allowed")
    _check_document(query, place)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _check_document(query: Any, place: str) -> None:
    if not isinstance(query, dict):
        raise InvalidFilter(place, "must be a JSON object of field paths and conditions")
    for key, value in query.items():
        where = f"{place}.{key}"
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilter(where, "must be a non-empty list of filters")
            for i, part in enumerate(value):
                _check_document(part, f"{where}[{i}]")
        elif key == "$not":
            _check_document(value, where)
        elif key.startswith("$"):
            raise InvalidFilter(where, f"unknown operator; use one of {_listed(LOGICAL)} "
                                       "here, or a field path")
        else:
            if any(not part for part in key.split(".")):
                raise InvalidFilter(where, "a field path needs a name between each dot")
            _check_condition(value, where)


def _check_condition(value: Any, place: str) -> None:
    if not _is_operators(value, place):
        return  # a plain value: equality
    for op, operand in value.items():
        where = f"{place}.{op}"
        if op not in FIELD_OPERATORS:
            hint = " (it goes at the top of a filter)" if op in ("$and", "$or") else ""
            raise InvalidFilter(where, f"unknown operator{hint}; use one of "
                                       f"{_listed(FIELD_OPERATORS)}")
        if op in ORDERINGS and (isinstance(operand, bool)
                                or not isinstance(operand, int | float | str)):
            raise InvalidFilter(where, "must be a number or a string")
        if op in ("$in", "$nin") and not isinstance(operand, list):
            raise InvalidFilter(where, "must be a list of values")
        if op == "$exists" and not isinstance(operand, bool):
            raise InvalidFilter(where, "must be true or false")
        if op == "$not":
            if not _is_operators(operand, where):
                raise InvalidFilter(where, "must be an object of operators, like "
                                           '{"$gt": 5}')
            _check_condition(operand, where)


def _is_operators(value: Any, place: str) -> bool:
    """Whether ``value`` is an object of operators (not a plain value to equal)."""
    if not isinstance(value, dict) or not value:
        return False
    dollars = [k.startswith("$") for k in value]
    if any(dollars) and not all(dollars):
        raise InvalidFilter(place, "mixes operators and field names; put the fields in "
                                   "paths of their own")
    return all(dollars)


def _listed(names: frozenset[str]) -> str:
    return ", ".join(sorted(names))


# ---- matching ------------------------------------------------------------------------------
# A filter is compiled once into nested functions (paths split, operators chosen): fan-out
# tries each subscription's filter on every event, and interpreting the query each time cost
# about 10 µs a try.

Predicate = Callable[[Any], bool]  # a body -> whether it matches
Test = Callable[[list[Any]], bool]  # the values found at a path -> whether they meet it


def matches(query: dict[str, Any], body: Any) -> bool:
    """Whether ``body`` matches ``query`` (a filter ``check`` passed). Never raises."""
    return compiled(query)(body)


def compiled(query: dict[str, Any]) -> Predicate:
    """``query`` (a filter ``check`` passed) as a function of a body."""
    return _all_of([_compile_key(key, value) for key, value in query.items()])


@functools.lru_cache(maxsize=65_536)
def compiled_text(text: str) -> Predicate:
    """The filter stored as JSON ``text``, compiled once per process (fan-out reads the
    column as text, so unchanged filters are neither parsed nor compiled again)."""
    return compiled(json.loads(text))


def _all_of(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]

    def every(body: Any) -> bool:
        for part in parts:
            if not part(body):
                return False
        return True
    return every


def _compile_key(key: str, value: Any) -> Predicate:
    if key == "$and":
        return _all_of([compiled(part) for part in value])
    if key == "$or":
        parts = [compiled(part) for part in value]
        return lambda body: any(part(body) for part in parts)
    if key == "$not":
        inner = compiled(value)
        return lambda body: not inner(body)
    path = tuple(key.split("."))
    test = _compile_condition(value)
    return lambda body: test(_values_at(body, path))


def _values_at(body: Any, path: tuple[str, ...]) -> list[Any]:
    """The values at ``path`` under ``body``; through objects directly, through a list as
    ``_found`` says."""
    node = body
    for i, step in enumerate(path):
        if type(node) is dict:
            if step not in node:
                return []
            node = node[step]
        elif type(node) is list:
            return list(_found(node, list(path[i:])))
        else:
            return []
    return [node]


def _found(node: Any, path: list[str]) -> Iterator[Any]:
    """The values at ``path`` under ``node``: a list is looked into (by index when the step
    is a number, and each element that is an object)."""
    if not path:
        yield node
        return
    step, rest = path[0], path[1:]
    if isinstance(node, dict):
        if step in node:
            yield from _found(node[step], rest)
    elif isinstance(node, list):
        if step.isdigit() and int(step) < len(node):
            yield from _found(node[int(step)], rest)
        for item in node:
            if isinstance(item, dict):
                yield from _found(item, path)


def _compile_condition(condition: Any) -> Test:
    """The values found at a path -> whether they meet ``condition`` (operators or a
    plain value to equal)."""
    if not (isinstance(condition, dict) and condition
            and all(k.startswith("$") for k in condition)):
        return _equal_to(condition)
    tests = [_compile_operator(op, operand) for op, operand in condition.items()]
    if len(tests) == 1:
        return tests[0]
    return lambda values: all(test(values) for test in tests)


def _compile_operator(op: str, operand: Any) -> Test:
    if op == "$eq":
        return _equal_to(operand)
    if op in ("$ne", "$nin"):
        inner = _equal_to(operand) if op == "$ne" else _compile_operator("$in", operand)
        return lambda values: not inner(values)
    if op == "$in":
        choices = [_equal_to(choice) for choice in operand]
        return lambda values: any(choice(values) for choice in choices)
    if op == "$exists":
        return (lambda values: bool(values)) if operand else (lambda values: not values)
    if op == "$not":
        inner = _compile_condition(operand)
        return lambda values: not inner(values)
    return _ordering(op, operand)


def _candidates(values: list[Any]) -> Iterator[Any]:
    """Each value found, and each element of a list found (MongoDB's array matching)."""
    for value in values:
        yield value
        if type(value) is list:
            yield from value


def _equal_to(operand: Any) -> Test:
    if operand is None:
        # null equals a missing field
        return lambda values: not values or any(v is None for v in _candidates(values))
    if type(operand) in (str, bool) or _number(operand):
        kinds = (int, float) if _number(operand) else (type(operand),)

        def equal_plain(values: list[Any]) -> bool:
            for value in values:
                if type(value) in kinds and value == operand:
                    return True
                if type(value) is list and any(type(v) in kinds and v == operand
                                               for v in value):
                    return True
            return False
        return equal_plain
    return lambda values: any(_same(candidate, operand) for candidate in _candidates(values))


def _same(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers; 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _number(a) and _number(b):
        return bool(a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


def _ordering(op: str, operand: Any) -> Test:
    """``candidate op operand`` for a candidate of the operand's kind (numbers with numbers,
    strings with strings); any other candidate does not match."""
    compare = COMPARE[op]
    kinds = (int, float) if _number(operand) else (str,)

    def ordered(values: list[Any]) -> bool:
        for value in values:
            if type(value) in kinds and compare(value, operand):
                return True
            if type(value) is list and any(type(v) in kinds and compare(v, operand)
                                           for v in value):
                return True
        return False
    return ordered
