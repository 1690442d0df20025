"""dispatcher.event_types: type names, subscription patterns, and matching.

Contract (API.md): `type` matches `^[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*$`, ≤ 128 chars. A pattern
is an exact type, or ends in `.*` (any suffix of dot-separated segments), or is `*` (all).
"""

from __future__ import annotations

import pytest

from dispatcher.event_types import is_valid_pattern, is_valid_type, matches, matches_any


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("invoice.paid", True),
        ("invoice", True),
        ("a", True),
        ("user.created", True),
        ("A_b.C_9.x", True),
        ("dispatcher.test", True),
        ("_", True),
        ("0.1.2", True),
        ("a" * 128, True),
        ("a." * 63 + "ab", True),  # exactly 128
        ("a" * 129, False),
        ("", False),
        (".", False),
        ("a.", False),
        (".a", False),
        ("a..b", False),
        ("a-b", False),
        ("a b", False),
        ("a/b", False),
        ("a.*", False),  # a pattern, not a type
        ("*", False),
        ("caf\u00e9", False),
        ("invoice.paid\n", False),  # the regex is anchored: no trailing newline
        ("\ninvoice.paid", False),
        ("invoice.paid ", False),
        ("invoice\n.paid", False),
    ],
    ids=repr,
)
def test_is_valid_type(name, valid):
    assert is_valid_type(name) is valid


@pytest.mark.parametrize(
    ("pattern", "valid"),
    [
        ("*", True),
        ("invoice.*", True),
        ("a.b.*", True),
        ("invoice.paid", True),
        ("invoice", True),
        ("a" * 128, True),
        ("a" * 126 + ".*", True),  # 128 in all
        ("a" * 127 + ".*", False),  # 129
        ("a" * 129, False),
        ("", False),
        ("**", False),
        ("*.*", False),
        (".*", False),
        ("*.paid", False),
        ("invoice.*.paid", False),
        ("invoice*", False),
        ("invoice.**", False),
        ("invoice.", False),
        ("invoice..*", False),
        ("in voice.*", False),
        ("invoice.*\n", False),
        ("*\n", False),
        ("invoice.paid\n", False),
    ],
    ids=repr,
)
def test_is_valid_pattern(pattern, valid):
    assert is_valid_pattern(pattern) is valid


VALID_TYPES_SAMPLE = ["a", "invoice", "invoice.paid", "invoice.paid.late", "user.created",
                      "x.y.z.w"]


@pytest.mark.parametrize("event_type", VALID_TYPES_SAMPLE)
def test_every_valid_type_is_a_valid_pattern_matching_only_itself(event_type):
    assert is_valid_type(event_type)
    assert is_valid_pattern(event_type)
    assert matches(event_type, event_type)
    for other in VALID_TYPES_SAMPLE:
        assert matches(event_type, other) is (other == event_type)


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        # "*" matches everything
        ("*", "a", True),
        ("*", "invoice.paid", True),
        ("*", "invoice.paid.late", True),
        # dispatcher's own operational events are reached only by naming them
        ("*", "dispatcher.test", False),
        ("*", "dispatcher.subscription.disabled", False),
        ("*", "dispatcher", True),
        ("*", "dispatchers.x", True),
        ("*", "Dispatcher.x", True),
        ("dispatcher.*", "dispatcher.delivery.failed", True),
        ("dispatcher.delivery.failed", "dispatcher.delivery.failed", True),
        # prefix.* : one or more further segments
        ("invoice.*", "invoice.paid", True),
        ("invoice.*", "invoice.paid.late", True),
        ("invoice.*", "invoice.refund.partial.reversed", True),
        ("invoice.*", "invoice", False),
        ("invoice.*", "invoices.paid", False),
        ("invoice.*", "invoicepaid", False),
        ("invoice.*", "xinvoice.paid", False),
        ("invoice.*", "user.invoice.paid", False),
        ("invoice.*", "Invoice.paid", False),
        ("a.b.*", "a.b.c", True),
        ("a.b.*", "a.b.c.d", True),
        ("a.b.*", "a.b", False),
        ("a.b.*", "a.bc", False),
        ("a.b.*", "a.bc.d", False),
        ("a.b.*", "a.c.b", False),
        ("a.b.*", "a", False),
        ("a.*", "b.a", False),
        # exact: only itself
        ("invoice.paid", "invoice.paid", True),
        ("invoice.paid", "invoice.paid.late", False),
        ("invoice.paid", "invoice", False),
        ("invoice.paid", "invoice.pai", False),
        ("invoice.paid", "invoice.paidx", False),
        ("invoice.paid", "xinvoice.paid", False),
        ("invoice", "invoice.paid", False),
        ("a.b.c", "a.b.c", True),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else str(v),
)
def test_matches(pattern, event_type, expected):
    assert matches(pattern, event_type) is expected


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        ([], "invoice.paid", False),
        (["*"], "anything.at.all", True),
        (["user.created", "invoice.*"], "invoice.paid", True),
        (["user.created", "invoice.*"], "user.created", True),
        (["user.created", "invoice.*"], "user.deleted", False),
        (["user.created", "invoice.*"], "invoice", False),
        (["a.b", "a.c"], "a.c", True),
        (["a.b", "a.c"], "a.d", False),
        (["a.b.*", "*"], "z", True),
        (("invoice.*",), "invoice.paid", True),  # any iterable
        (iter(["x", "invoice.*"]), "invoice.paid", True),
        ((p for p in ["x", "y"]), "invoice.paid", False),
    ],
)
def test_matches_any(patterns, event_type, expected):
    assert matches_any(patterns, event_type) is expected
