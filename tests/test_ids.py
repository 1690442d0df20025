"""dispatcher.ids: prefixed, opaque ids that sort by creation time.

Contract (API.md, Conventions): `sub_…`, `evt_…`, `dlv_…`, `att_…`, `key_…`; they sort by
creation time (a list cursor is the last id seen).
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.ids import PREFIXES, is_id, new_id, time_bound

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
CONTRACT_PREFIXES = ["sub", "evt", "dlv", "att", "key"]


def suffix_re(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"{prefix}_[{re.escape(ALPHABET)}]{{26}}")


def decode(suffix: str) -> int:
    value = 0
    for ch in suffix:
        value = value * 32 + ALPHABET.index(ch)
    return value


def test_prefixes_are_the_contract_prefixes():
    assert sorted(PREFIXES) == sorted(CONTRACT_PREFIXES)


@pytest.mark.parametrize("prefix", CONTRACT_PREFIXES)
def test_new_id_format(prefix):
    for _ in range(200):
        value = new_id(prefix)
        assert suffix_re(prefix).fullmatch(value), value
        assert len(value) == len(prefix) + 1 + 26
        assert is_id(value, prefix)


def test_encoding_is_base32_of_the_value_most_significant_first():
    import random

    from dispatcher.ids import _encode

    rng = random.Random(6)
    values = [0, 1, 31, 32, 1023, 1024, 2**80 - 1, 2**128 - 1, 2**130 - 1]
    values += [rng.getrandbits(128) for _ in range(5000)]
    for value in values:
        encoded = _encode(value)
        assert len(encoded) == 26 and set(encoded) <= set(ALPHABET), encoded
        assert decode(encoded) == value, value


def test_a_forked_child_does_not_hand_out_the_parents_random_parts():
    import os

    new_id("evt")  # random parts are read ahead: the parent holds some now
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write, new_id("evt").encode())
        os._exit(0)
    os.close(write)
    made_in_child = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(child, 0)
    made_in_parent = new_id("evt")
    random_part = 2**80 - 1
    assert decode(made_in_child[4:]) & random_part != decode(made_in_parent[4:]) & random_part


def test_new_id_embeds_creation_time_in_milliseconds():
    before = time.time_ns() // 1_000_000
    value = new_id("evt")
    after = time.time_ns() // 1_000_000
    millis = decode(value[4:]) >> 80
    # Within one millisecond the counter may carry into the time part, but only in a burst.
    assert before <= millis <= after + 1


def test_strictly_increasing_in_a_tight_loop():
    ids = [new_id("evt") for _ in range(10_000)]
    assert all(a < b for a, b in zip(ids, ids[1:], strict=False))
    assert len(set(ids)) == len(ids)


def test_sorted_order_is_creation_order_across_time():
    batches = []
    for _ in range(3):
        batches.append([new_id("dlv") for _ in range(100)])
        time.sleep(0.003)
    created = [i for batch in batches for i in batch]
    shuffled = sorted(created, key=lambda s: s[::-1])  # any other order
    assert sorted(shuffled) == created
    assert max(batches[0]) < min(batches[1]) and max(batches[1]) < min(batches[2])


def test_increasing_across_prefixes():
    """The suffix order follows creation order whatever the prefix."""
    ids = [new_id(CONTRACT_PREFIXES[i % 5]) for i in range(1000)]
    suffixes = [i.split("_", 1)[1] for i in ids]
    assert suffixes == sorted(suffixes)
    assert len(set(suffixes)) == len(suffixes)


def test_unique_and_ordered_per_thread_under_concurrency():
    results: dict[int, list[str]] = {}

    def work(n: int) -> None:
        results[n] = [new_id("att") for _ in range(2_500)]

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in results.values() for i in ids]
    assert len(everything) == 10_000
    assert len(set(everything)) == 10_000
    for ids in results.values():
        assert ids == sorted(ids)


VALID = "0" + "123456789abcdefghjkmnpqrstv"[:25]  # 26 characters of the alphabet


@pytest.mark.parametrize(
    ("value", "prefix", "expected"),
    [
        (f"evt_{VALID}", "evt", True),
        (f"sub_{VALID}", "sub", True),
        (f"key_{VALID}", "key", True),
        (f"evt_{'z' * 26}", "evt", True),
        (f"evt_{VALID}", "sub", False),  # wrong prefix
        (f"sub_{VALID}", "evt", False),
        (f"foo_{VALID}", "foo", False),  # unknown prefix
        (f"evt{VALID}", "evt", False),  # no underscore
        (f"evt-{VALID}", "evt", False),
        (f"evt_{VALID[:-1]}", "evt", False),  # 25 characters
        (f"evt_{VALID}0", "evt", False),  # 27 characters
        (f"EVT_{VALID}", "evt", False),
        (f"evt_{VALID.upper()}", "evt", False),
        (f"evt_{VALID[:-1]}i", "evt", False),  # i, l, o, u are not in the alphabet
        (f"evt_{VALID[:-1]}l", "evt", False),
        (f"evt_{VALID[:-1]}o", "evt", False),
        (f"evt_{VALID[:-1]}u", "evt", False),
        (f"evt_{VALID[:-1]}_", "evt", False),
        (f" evt_{VALID}", "evt", False),
        (f"evt_{VALID} ", "evt", False),
        (f"evt_{VALID}\n", "evt", False),  # a trailing newline is not part of an id
        ("", "evt", False),
        ("evt_", "evt", False),
    ],
    ids=repr,
)
def test_is_id(value, prefix, expected):
    assert is_id(value, prefix) is expected


def test_time_bounds_enclose_the_ids_made_at_that_time():
    before = datetime.now(UTC) - timedelta(milliseconds=1)
    made = new_id("dlv")
    after = datetime.now(UTC) + timedelta(milliseconds=1)
    assert time_bound("dlv", before) <= made < time_bound("dlv", after)
    assert time_bound("dlv", after) < time_bound("dlv", after + timedelta(seconds=1))
