"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from diboas.identity.dependencies import public
from diboas.observability.metrics import JOBS

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up", dependencies=[public()])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers", response_model=None, dependencies=[public()])
async def readyz(request: Request) -> JSONResponse:
    try:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported as 503
        return JSONResponse(
            {"status": "unavailable", "database": type(exc).__name__}, status_code=503
        )
    return JSONResponse({"status": "ready", "database": "ok"})


@router.get(
    "/metrics", summary="Prometheus metrics", response_class=Response, dependencies=[public()]
)
async def metrics(request: Request) -> Response:
    await _refresh_queue_depth(request)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _refresh_queue_depth(request: Request) -> None:
    """Queue depth per job and status, read at scrape time (one grouped query)."""
    from diboas.orchestration.operator import queue_depth

    try:
        async with request.app.state.engine.connect() as conn:
            depth = await queue_depth(conn)
    except Exception:  # noqa: BLE001 - a scrape still answers when the database does not
        return
    JOBS.clear()
    for (entrypoint, status), count in depth.items():
        JOBS.labels(entrypoint, status).set(count)
