"""Durable jobs on PgQueuer, staged inside the caller's own database transaction.

A job staged by a money movement commits or rolls back with it (a transactional outbox):
``stage`` enqueues on the very connection and transaction of the SQLAlchemy session. Delivery
is at-least-once, so every handler is idempotent. Job names are dotted
(``banking.deposit_settle``); payloads carry ids, never objects.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.engine import SessionFactory
from diboas.settings import Settings


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a job handler gets besides its payload."""

    sessions: SessionFactory
    settings: Settings
    attempt: int
    services: dict[str, Any]


JobHandler = Callable[[JobContext, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A registered job: its handler and how it is retried."""

    name: str
    handler: JobHandler
    max_attempts: int
    concurrency_limit: int


REGISTRY: dict[str, JobSpec] = {}

PeriodicHandler = Callable[[JobContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class PeriodicSpec:
    """Work every worker does every ``every(settings)`` seconds (it must be idempotent:
    several workers may run it at the same time)."""

    name: str
    handler: PeriodicHandler
    every: Callable[[Settings], float]


PERIODIC: dict[str, PeriodicSpec] = {}


def periodic(
    name: str, *, every: Callable[[Settings], float]
) -> Callable[[PeriodicHandler], PeriodicHandler]:
    """Register idempotent work the worker repeats (polling a provider's reports, say)."""

    def register(handler: PeriodicHandler) -> PeriodicHandler:
        PERIODIC[name] = PeriodicSpec(name, handler, every)
        return handler

    return register


def job(
    name: str, *, max_attempts: int = 8, concurrency_limit: int = 0
) -> Callable[[JobHandler], JobHandler]:
    """Register a handler under a dotted job name."""

    def register(handler: JobHandler) -> JobHandler:
        if name in REGISTRY and REGISTRY[name].handler is not handler:
            raise ValueError(f"job {name!r} is registered twice")
        REGISTRY[name] = JobSpec(name, handler, max_attempts, concurrency_limit)
        return handler

    return register


async def stage(
    session: AsyncSession,
    name: str,
    payload: dict[str, Any],
    *,
    delay: timedelta | None = None,
    dedupe_key: str | None = None,
) -> int:
    """Enqueue a job in the session's open transaction; it exists only if that commits."""
    if name not in REGISTRY:
        raise ValueError(f"unknown job {name!r}")
    connection = await session.connection()
    raw: Any = (await connection.get_raw_connection()).driver_connection
    if not raw.is_in_transaction():
        # SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement; without
        # one, the enqueue below would commit on its own, outside the caller's transaction.
        await session.execute(text("SELECT 1"))
    if not raw.is_in_transaction():
        raise RuntimeError("jobs are staged only inside a transaction")
    driver = AsyncpgDriver(raw)  # the session's own asyncpg connection, in its transaction
    ids = await Queries(driver).enqueue(
        name,
        json.dumps(payload, default=str).encode(),
        execute_after=delay,
        dedupe_key=dedupe_key,
    )
    return int(ids[0])
