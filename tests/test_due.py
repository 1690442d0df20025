"""The worker's memory of the next due time (``dispatcher.due``): a pure decision, a table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.due import DueMemory, DueReading, still_holds

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(seconds=5)
NONE: frozenset[str] = frozenset()
A = frozenset({"sub_a"})
AB = frozenset({"sub_a", "sub_b"})


@pytest.mark.parametrize("reading, retries, skip, monotonic, holds", [
    (None, True, NONE, 10.0, False),                             # never read
    (DueReading(None, True, NONE, 10.0), True, NONE, 10.5, True),     # nothing due, fresh
    (DueReading(LATER, True, NONE, 10.0), True, NONE, 10.5, True),    # due later, fresh
    (DueReading(None, True, NONE, 10.0), True, NONE, 11.0, False),    # as old as the memory
    (DueReading(NOW, True, NONE, 10.0), True, NONE, 10.1, False),     # came due: read again
    (DueReading(LATER, True, NONE, 10.0), False, NONE, 10.1, True),   # with retries covers without
    (DueReading(LATER, False, NONE, 10.0), True, NONE, 10.1, False),  # without: not with
    (DueReading(LATER, True, A, 10.0), True, AB, 10.1, True),         # more left out: no later
    (DueReading(LATER, True, AB, 10.0), True, A, 10.1, False),        # sub_b claimable again
])
def test_still_holds(reading, retries, skip, monotonic, holds):
    assert still_holds(reading, retries=retries, skip=skip, now=NOW, monotonic=monotonic,
                       memory=1.0) is holds


def test_a_reading_is_kept_until_forgotten():
    memory = DueMemory(1.0)
    assert memory.recall(retries=True, skip=NONE, now=NOW, monotonic=0.0) == (False, None)
    memory.remember(LATER, retries=True, skip=NONE, monotonic=0.0, begun=memory.forgotten)
    assert memory.recall(retries=True, skip=NONE, now=NOW, monotonic=0.5) == (True, LATER)
    memory.forget()  # the worker committed a retry: the reading may not have seen it
    assert memory.recall(retries=True, skip=NONE, now=NOW, monotonic=0.5) == (False, None)


def test_a_reading_begun_before_a_commit_it_may_have_missed_is_not_kept():
    memory = DueMemory(60.0)
    begun = memory.forgotten
    memory.forget()  # the recorder committed a retry while the reading was under way
    memory.remember(None, retries=True, skip=NONE, monotonic=0.0, begun=begun)
    assert memory.recall(retries=True, skip=NONE, now=NOW, monotonic=0.1) == (False, None)
    memory.remember(None, retries=True, skip=NONE, monotonic=0.2, begun=memory.forgotten)
    assert memory.recall(retries=True, skip=NONE, now=NOW, monotonic=0.3) == (True, None)
