from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ... import metrics
from ...store import QueueStats
from ..errors import error_response, error_responses

router = APIRouter(tags=["operations"])
log = logging.getLogger("dispatcher.api")

# Within Prometheus' default scrape timeout (10 s): a database that hangs still gets an
# answer, with dispatcher_database_up 0.
QUEUE_STATS_TIMEOUT = 5.0


async def _queue_stats(request: Request) -> QueueStats | None:
    try:
        async with asyncio.timeout(QUEUE_STATS_TIMEOUT):
            stats: QueueStats = await request.state.store.queue_stats()
            return stats
    except Exception as exc:
        log.warning("metrics: the database did not answer (%s)", type(exc).__name__)
        return None


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={
        200: {"description": "Prometheus text format (version 0.0.4)",
              "content": {metrics.CONTENT_TYPE: {"schema": {"type": "string"}}}},
        **error_responses(401, s401="unauthorized: DISPATCHER_METRICS_TOKEN is set and "
                                    "the request did not send it as a bearer token"),
    },
)
async def get_metrics(request: Request) -> Response:
    """Counters and histograms of the dispatcher processes (every process on this machine
    with PROMETHEUS_MULTIPROC_DIR), and the queue's state read from the database now.
    No authentication unless DISPATCHER_METRICS_TOKEN is set."""
    token = request.state.settings.metrics_token
    if not metrics.authorized(request.headers.get("authorization"), token):
        return error_response(401, "unauthorized",
                              "send 'Authorization: Bearer <metrics token>'")
    counted = metrics.counted_now()
    body = metrics.render(counted, await _queue_stats(request))
    return Response(body, media_type=metrics.CONTENT_TYPE)
