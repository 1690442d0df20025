"""Bulk replay of failed deliveries: confirm, start (a background job), follow."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from ...store import DeliveryFilter
from ...vocabulary import DeliveryStatus
from .deliveries import delivery_filters, query_of
from .site import Admin, PageError, audit, form_of, render, router, store_of


def _replay_filter(params: dict[str, str]) -> tuple[dict[str, Any], DeliveryFilter]:
    filters = delivery_filters({**params, "status": DeliveryStatus.FAILED.value})
    return filters, DeliveryFilter(**filters)


@router.get("/replay")
async def replay_confirm(request: Request, session: Admin) -> Response:
    filters, chosen = _replay_filter(dict(request.query_params))
    store = store_of(request)
    count = await store.count_replayable(chosen)
    names = await store.subscription_names([filters["subscription_id"] or ""])
    tenants = await store.tenant_names([filters["tenant_id"]])
    return render(request, "replay_confirm.html", session=session, filters=filters,
                  count=count, back=query_of(filters), names=names, tenants=tenants)


@router.post("/replay")
async def replay_start(request: Request, session: Admin) -> Response:
    fields = await form_of(request, session)
    _, chosen = _replay_filter(fields)
    store = store_of(request)
    total = await store.count_replayable(chosen)
    job = request.app.state.replay_jobs.start(store, chosen, total)
    audit.info("dashboard: replay %s of %d failed deliveries started (%s)", job.id, total,
               chosen, extra={"key_id": session.key_id})
    return RedirectResponse(f"/ui/replay/{job.id}", status_code=303)


@router.get("/replay/{job_id}")
async def replay_progress(request: Request, session: Admin, job_id: str) -> Response:
    job = request.app.state.replay_jobs.get(job_id)
    if job is None:
        raise PageError(404, "No replay of that name is known to this server (replays are "
                             "tracked by the process that started them, until it restarts).")
    return render(request, "replay_progress.html", session=session, job=job,
                  back=query_of(asdict(job.filter)))
