"""What happens after an attempt: succeeded, retry at a later time, or failed.

Pure decisions, no I/O. ``classify`` reads a receiver's answer the way the contract says;
``RetryPolicy`` is a tenacity policy (retry predicate, stop condition, wait schedule)
evaluated on the delivery's attempt history. It returns a delay that the store persists as
``next_attempt_at``; nothing here sleeps.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt
from tenacity.wait import wait_base

from .clock import as_utc
from .vocabulary import DeliveryStatus


class Verdict(enum.Enum):
    """How an answer reads (never stored: what is stored is the ``DeliveryStatus``)."""

    SUCCEEDED = enum.auto()
    RETRYABLE = enum.auto()  # 408, 425, 429, 5xx, timeouts, connection errors
    FAILED = enum.auto()  # 3xx (not followed), other 4xx: the same request will fail again
    GONE = enum.auto()  # 410: fail and disable the subscription


RETRYABLE_STATUS = frozenset({408, 425, 429})
RETRY_AFTER_STATUS = frozenset({429, 503})


def classify(status_code: int | None) -> Verdict:
    """The verdict on one attempt; ``None`` means no answer (timeout, connection error)."""
    if status_code is None:
        return Verdict.RETRYABLE
    if 200 <= status_code < 300:
        return Verdict.SUCCEEDED
    if status_code == 410:
        return Verdict.GONE
    if status_code in RETRYABLE_STATUS or 500 <= status_code < 600:
        return Verdict.RETRYABLE
    return Verdict.FAILED


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from ``now`` that a ``Retry-After`` header asks for (delta or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, (as_utc(when) - now).total_seconds())


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt produced, as the policy sees it."""

    status_code: int | None
    retry_after: float | None = None  # seconds, already parsed
    blocked: bool = False  # refused at connect time: the same address will be refused again

    @property
    def verdict(self) -> Verdict:
        return Verdict.FAILED if self.blocked else classify(self.status_code)


@dataclass(frozen=True, slots=True)
class Step:
    status: DeliveryStatus  # succeeded, pending (to retry) or failed
    delay: float | None = None  # seconds until the next attempt, when pending
    gone: bool = False  # the receiver answered 410: disable the subscription


def delivery_after(
    step: Step, now: datetime, resume_status: str | None = None,
    resume_at: datetime | None = None,
) -> tuple[str, datetime | None]:
    """The delivery's status and next attempt time after an attempt decided as ``step``.

    A manual attempt (``resume_status``: the status it was asked from) is outside the
    schedule: unless it succeeded, the delivery goes back to that status, and a pending one
    to the time its next scheduled attempt had (``resume_at``).
    """
    if resume_status is not None and step.status != DeliveryStatus.SUCCEEDED:
        pending = resume_status == DeliveryStatus.PENDING
        return resume_status, (resume_at or now) if pending else None
    if step.status == DeliveryStatus.PENDING:
        return DeliveryStatus.PENDING, now + timedelta(seconds=step.delay or 0)
    return step.status, None


class wait_schedule(wait_base):
    """The n-th retry waits ``schedule[n-1]`` ± jitter; ``Retry-After`` overrides, capped."""

    def __init__(self, schedule: tuple[float, ...], jitter: float, rng: random.Random) -> None:
        self.schedule = schedule
        self.jitter = jitter
        self.rng = rng
        self.cap = max(schedule, default=0.0)

    def __call__(self, retry_state: RetryCallState) -> float:
        if retry_state.outcome is None:
            raise RuntimeError("a wait is asked for only after an attempt")
        outcome: Outcome = retry_state.outcome.result()
        if outcome.retry_after is not None and outcome.status_code in RETRY_AFTER_STATUS:
            return min(outcome.retry_after, self.cap)
        base = self.schedule[min(retry_state.attempt_number, len(self.schedule)) - 1]
        return base * (1 + self.rng.uniform(-self.jitter, self.jitter))


class RetryPolicy:
    def __init__(
        self, schedule: tuple[float, ...], jitter: float = 0.2, rng: random.Random | None = None
    ) -> None:
        self.schedule = schedule
        self._retrying = Retrying(
            retry=retry_if_result(lambda o: o.verdict is Verdict.RETRYABLE),
            stop=stop_after_attempt(len(schedule) + 1),
            wait=wait_schedule(schedule, jitter, rng or random.Random()),
        )

    def next_step(self, attempt_number: int, outcome: Outcome) -> Step:
        """Decide after attempt ``attempt_number`` (1-based, counted in this retry round)."""
        verdict = outcome.verdict
        if verdict is Verdict.SUCCEEDED:
            return Step(DeliveryStatus.SUCCEEDED)
        if verdict is Verdict.GONE:
            return Step(DeliveryStatus.FAILED, gone=True)
        state = RetryCallState(self._retrying, None, (), {})
        state.attempt_number = attempt_number
        state.set_result(outcome)
        if not self._retrying.retry(state) or self._retrying.stop(state):
            return Step(DeliveryStatus.FAILED)
        return Step(DeliveryStatus.PENDING, delay=self._retrying.wait(state))


class Policies:
    """The retry policy of each schedule in use: the global one (``default``), and one per
    subscription schedule, made once."""

    def __init__(self, default: RetryPolicy, jitter: float) -> None:
        self.default = default
        self.jitter = jitter
        self._made: dict[tuple[float, ...], RetryPolicy] = {}

    def of(self, schedule: tuple[float, ...] | None) -> RetryPolicy:
        if schedule is None:
            return self.default
        policy = self._made.get(schedule)
        if policy is None:
            policy = self._made[schedule] = RetryPolicy(schedule, self.jitter)
        return policy
