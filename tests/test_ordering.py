"""Ordered subscriptions: the pure decisions of ``store/ordering.py``, as tables."""

from __future__ import annotations

import pytest

from dispatcher.store.ordering import Due, next_head, numbered


@pytest.mark.parametrize("active, waiting, promote, demote", [
    ([], None, None, []),                                        # nothing pending
    ([], ("d5", 5), "d5", []),                                   # the head finished: next
    ([Due("d4", 4, False)], ("d5", 5), None, []),                # the head waits its retry
    ([Due("d4", 4, True)], ("d5", 5), None, []),                 # the head is in flight
    # A replay or an enabling made several due: the lowest stays, the rest wait again.
    ([Due("d2", 2, False), Due("d3", 3, False)], ("d9", 9), None, ["d3"]),
    # ... unless one is in flight: it stays the only one due.
    ([Due("d2", 2, False), Due("d6", 6, True)], None, None, ["d2"]),
    # A replayed earlier one waits behind an idle head of higher sequence? No: the lower one
    # goes first, the higher one waits.
    ([Due("d6", 6, False)], ("d2", 2), "d2", ["d6"]),
    ([Due("d6", 6, True), Due("d7", 7, True)], None, None, ["d7"]),  # never two in flight
])
def test_next_head(active, waiting, promote, demote):
    assert next_head(active, waiting) == (promote, demote)


def test_numbered_counts_up_per_subscription_in_order():
    rows = [("a1", "s1", None), ("b1", "s2", None), ("a2", "s1", None), ("c1", "s3", None)]
    assert numbered(rows, {"s1": 7, "s2": 1}, 1, 2) == [
        ("a1", "s1", 7), ("b1", "s2", 1), ("a2", "s1", 8), ("c1", "s3", None)]
