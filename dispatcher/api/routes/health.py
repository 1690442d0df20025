from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..errors import error_response, error_responses
from ..schemas import HealthOut, ReadyOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness")
async def healthz() -> dict[str, str]:
    """200 while the process runs; it asks nothing of the database. No key needed."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyOut, summary="Readiness", responses=error_responses(
    503, s503="database_unavailable, or worker_stopped: the delivery worker is not running"))
async def readyz(request: Request) -> JSONResponse:
    """200 when the database answers and the worker loop (if this process runs one) is alive.
    No key needed."""
    runtime = request.state.runtime
    try:
        await runtime.store.ping()
    except Exception:
        return error_response(503, "database_unavailable", "the database does not answer")
    if not runtime.worker_alive:
        return error_response(503, "worker_stopped", "the delivery worker is not running")
    return JSONResponse({"status": "ready"})
