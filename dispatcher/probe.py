"""The test send: one signed request to a subscription now, outside the queue (no event, no
delivery), and its answer. The API's test route and the dashboard's test button call it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from . import ids, sender
from .clock import utcnow
from .config import Settings
from .policy import Verdict, classify
from .store import encode_payload, valid_keys
from .vocabulary import AttemptOutcome


@dataclass(frozen=True, slots=True)
class ProbeResult:
    status_code: int | None  # None: no answer (timeout, connection error)
    duration_ms: int
    response_body: str | None
    error: str | None
    outcome: AttemptOutcome


async def send_test(
    client: httpx.AsyncClient, settings: Settings, sub: dict[str, Any], event_type: str,
    data: Any,
) -> ProbeResult:
    """Sign and send ``{"type": event_type, "data": data}`` to ``sub`` as a delivery would be,
    with its headers and its attempt deadline; classify the answer as the worker does."""
    now = utcnow()
    answer = await sender.send(
        client,
        sub["url"],
        ids.new_id("evt"),
        encode_payload(event_type, now, data),
        valid_keys(sub["secrets"], now),
        sub["headers"],
        sub.get("timeout_seconds") or settings.delivery_timeout_seconds,
    )
    ok = classify(answer.status_code) is Verdict.SUCCEEDED
    return ProbeResult(
        status_code=answer.status_code,
        duration_ms=answer.duration_ms,
        response_body=answer.body,
        error=answer.error,
        outcome=AttemptOutcome.SUCCEEDED if ok else AttemptOutcome.FAILED,
    )
