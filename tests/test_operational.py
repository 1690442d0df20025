"""``operational.after_recording``: which operational events one recording makes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.operational import Finished, OperationalType, after_recording
from dispatcher.vocabulary import DisabledReason

FAILED, DISABLED, RECOVERED = (OperationalType.DELIVERY_FAILED,
                               OperationalType.SUBSCRIPTION_DISABLED,
                               OperationalType.SUBSCRIPTION_RECOVERED)
GONE, FAILING = DisabledReason.GONE, DisabledReason.FAILING


NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(hours=1)  # a streak that has lasted past RECOVERED_AFTER


def _f(delivery, sub="sub_a", event_type="order.placed", tenant=None, since=LONG_AGO):
    return Finished(delivery, "evt_" + delivery, event_type, sub, tenant, 3, 503, "HTTP 503",
                    since)


PUBLISHERS = [_f("d1"), _f("d2", "sub_b", tenant="acme")]
OPERATIONAL = [_f("d3", "sub_ops", "dispatcher.delivery.failed")]


@pytest.mark.parametrize(("finished", "failed", "disabled", "recovered", "expected"), [
    # Nothing confirmed changed: nothing to tell.
    (PUBLISHERS, [], {}, [], []),
    (PUBLISHERS, ["d1"], {}, [], [(FAILED, "sub_a")]),
    (PUBLISHERS, ["d2", "d1"], {}, [], [(FAILED, "sub_a"), (FAILED, "sub_b")]),
    # A 410: the delivery failed and its subscription disabled, one event each.
    (PUBLISHERS, ["d1"], {"sub_a": GONE}, [], [(FAILED, "sub_a"), (DISABLED, "sub_a")]),
    (PUBLISHERS, [], {"sub_b": FAILING}, [], [(DISABLED, "sub_b")]),
    (PUBLISHERS, [], {}, ["sub_b"], [(RECOVERED, "sub_b")]),
    # A streak ended before it had lasted RECOVERED_AFTER is not news.
    ([_f("d5", "sub_c", since=NOW - timedelta(seconds=10))], [], {}, ["sub_c"], []),
    # An id the batch does not hold is ignored, not guessed at.
    (PUBLISHERS, ["d9"], {"sub_z": GONE}, ["sub_z"], []),
    # Attempts at operational events tell nothing, whatever they changed.
    (OPERATIONAL, ["d3"], {"sub_ops": GONE}, ["sub_ops"], []),
    (PUBLISHERS + OPERATIONAL, ["d1", "d3"], {"sub_ops": FAILING}, [], [(FAILED, "sub_a")]),
    # A subscription that took both kinds in one batch: its publisher's attempt counts.
    ([_f("d4", "sub_ops"), *OPERATIONAL], [], {"sub_ops": GONE}, [], [(DISABLED, "sub_ops")]),
])
def test_after_recording(finished, failed, disabled, recovered, expected):
    notices = after_recording(finished, failed, disabled, recovered, NOW)
    assert [(n.type, n.data["subscription_id"]) for n in notices] == expected


def test_what_each_event_says():
    failed, disabled, recovered = after_recording(
        PUBLISHERS, ["d2"], {"sub_b": GONE}, ["sub_b"], NOW)
    assert failed.data == {"delivery_id": "d2", "event_id": "evt_d2",
                           "event_type": "order.placed", "subscription_id": "sub_b",
                           "tenant_id": "acme", "attempts": 3, "last_status_code": 503,
                           "last_error": "HTTP 503"}
    assert disabled.data == {"subscription_id": "sub_b", "tenant_id": "acme", "reason": "gone"}
    assert recovered.data == {"subscription_id": "sub_b", "tenant_id": "acme"}
