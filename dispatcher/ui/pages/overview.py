"""The overview: the queue, attempts per minute, and the subscriptions that are not well."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from ...clock import utcnow
from ...health import WINDOW, Health, Rate, health
from ...store import Store
from ...vocabulary import AttemptOutcome
from ..chart import attempts_chart
from .site import Admin, render, router, store_of

CHART_MINUTES = 60
UNWELL_SHOWN = 50  # subscriptions listed on the overview, worst first
OVERVIEW_REFRESH_MS = 10_000
# Worst first on the overview; healthy ones are not listed there.
HEALTH_ORDER = {Health.FAILING: 0, Health.DISABLED: 1, Health.DEGRADED: 2, Health.HEALTHY: 3}


async def rates_of(store: Store, now: datetime,
                   sub_ids: list[str] | None = None) -> dict[str, Rate]:
    """Each subscription's attempts of the last hour, by outcome."""
    found = await store.attempt_outcomes(now - WINDOW, sub_ids)
    return {sub_id: Rate(n.get(AttemptOutcome.SUCCEEDED, 0), n.get(AttemptOutcome.FAILED, 0))
            for sub_id, n in found.items()}


def health_of(sub: dict[str, Any], rates: dict[str, Rate], now: datetime) -> Health:
    return health(sub["enabled"], rates.get(sub["id"], Rate()), sub["failing_since"], now)


@router.get("")
async def overview(request: Request, session: Admin) -> Response:
    store = store_of(request)
    now = utcnow()
    stats = await store.queue_stats()
    rows = await store.attempts_per_minute(now - timedelta(minutes=CHART_MINUTES))
    rates = await rates_of(store, now)
    # Candidates: disabled, in a failure streak, or with failures in the last hour.
    with_failures = sorted((i for i, r in rates.items() if r.failed),
                           key=lambda i: -rates[i].failed)[:UNWELL_SHOWN]
    unwell = []
    for sub in await store.unwell_subscriptions(UNWELL_SHOWN, also=with_failures):
        state = health_of(sub, rates, now)
        if state is not Health.HEALTHY:
            unwell.append({**sub, "health": state, "rate": rates.get(sub["id"], Rate())})
    unwell.sort(key=lambda s: (HEALTH_ORDER[s["health"]], -s["rate"].failed, s["id"]))
    states = [s["health"] for s in unwell]
    unwell = unwell[:UNWELL_SHOWN]
    tenants = await store.tenant_names([s["tenant_id"] for s in unwell])
    return render(request, "overview.html", session=session, stats=stats, tenants=tenants,
                  chart=attempts_chart(rows, now, CHART_MINUTES), minutes=CHART_MINUTES,
                  unwell=unwell, failing=states.count(Health.FAILING),
                  degraded=states.count(Health.DEGRADED), refresh=OVERVIEW_REFRESH_MS, now=now)
