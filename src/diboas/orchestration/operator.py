"""What an operator does with jobs: list the dead letters (``failed``), inspect one with its
history and last error, and put failed jobs back in the queue. Also the queue-depth figures
exported as metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from diboas.kit.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class JobView:
    """A job as an operator sees it."""

    id: int
    entrypoint: str
    status: str
    attempts: int
    created: datetime
    execute_after: datetime
    payload: dict[str, Any]
    history: list[dict[str, Any]]


def _payload(raw: bytes | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {"undecodable": True}
    return value if isinstance(value, dict) else {"value": value}


async def jobs(conn: AsyncConnection, *, status: str = "failed", limit: int = 50) -> list[JobView]:
    """Jobs in a status (dead letters by default), newest first."""
    rows = await conn.execute(
        text("""
            SELECT id, entrypoint, status::text AS status, attempts, created, execute_after, payload
              FROM pgqueuer WHERE status::text = :status ORDER BY id DESC LIMIT :limit
        """),
        {"status": status, "limit": limit},
    )
    return [
        JobView(
            r.id,
            r.entrypoint,
            r.status,
            r.attempts,
            r.created,
            r.execute_after,
            _payload(r.payload),
            [],
        )
        for r in rows
    ]


async def job(conn: AsyncConnection, job_id: int) -> JobView:
    """One job with every logged status change (and the error of each failure)."""
    row = (
        await conn.execute(
            text("""SELECT id, entrypoint, status::text AS status, attempts, created, execute_after, payload
                      FROM pgqueuer WHERE id = :id"""),
            {"id": job_id},
        )
    ).one_or_none()
    history_rows = await conn.execute(
        text("""SELECT created, status::text AS status, traceback FROM pgqueuer_log
                 WHERE job_id = :id ORDER BY created, id"""),
        {"id": job_id},
    )
    history = [
        {"at": h.created.isoformat(), "status": h.status, "error": _error(h.traceback)}
        for h in history_rows
    ]
    if row is None:
        if not history:
            raise NotFoundError(f"no job {job_id}")
        # Finished jobs leave the queue table; their log remains.
        last = history[-1]
        return JobView(
            job_id,
            "",
            last["status"],
            0,
            datetime.fromisoformat(history[0]["at"]),
            datetime.fromisoformat(last["at"]),
            {},
            history,
        )
    return JobView(
        row.id,
        row.entrypoint,
        row.status,
        row.attempts,
        row.created,
        row.execute_after,
        _payload(row.payload),
        history,
    )


def _error(traceback: Any) -> str | None:
    if not traceback:
        return None
    record = traceback if isinstance(traceback, dict) else json.loads(traceback)
    return str(record.get("exception_message") or record.get("exception_type") or record)[:500]


async def retry(conn: AsyncConnection, job_ids: list[int]) -> int:
    """Put failed jobs back in the queue now, with their attempts reset; returns how many."""
    failed = {j.id for j in await jobs(conn, status="failed", limit=10_000)}
    chosen = [job_id for job_id in job_ids if job_id in failed]
    if chosen:
        raw = (await conn.get_raw_connection()).driver_connection
        await Queries(AsyncpgDriver(raw)).requeue_jobs(chosen)  # type: ignore[arg-type]
    return len(chosen)


async def queue_depth(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """How many jobs wait or sit in each status, per job name."""
    rows = await conn.execute(
        text("SELECT entrypoint, status::text AS status, count(*) AS n FROM pgqueuer GROUP BY 1, 2")
    )
    return {(r.entrypoint, r.status): int(r.n) for r in rows}
