"""Orchestration's SQL: saga steps and the sagas that need attention."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.kit.ids import uuid7_time


@dataclass(frozen=True, slots=True)
class SagaStep:
    """One step a saga took."""

    state: str
    detail: dict[str, Any]
    at: datetime


# One statement: the state on the row and the step in the log move together.
_RECORD = text("""
    WITH moved AS (
        UPDATE transactions SET saga_state = :state, updated_at = now()
         WHERE id = :id AND created_at = :created_at
        RETURNING id
    )
    INSERT INTO saga_steps (transaction_id, state, detail)
    SELECT id, :state, CAST(:detail AS jsonb) FROM moved
""")

_STEPS = text("""
    SELECT state, detail, created_at AS at FROM saga_steps
     WHERE transaction_id = :id AND created_at >= :created_at
     ORDER BY id
""")

_NEEDING_ATTENTION = text("""
    SELECT id FROM transactions
     WHERE saga_state = :state AND updated_at <= now() - make_interval(secs => :idle)
     ORDER BY updated_at
     LIMIT :limit
""")


async def record_step(
    session: AsyncSession,
    transaction_id: uuid.UUID,
    created_at: datetime,
    state: str,
    detail: dict[str, Any],
) -> None:
    """Set the transaction's saga state and append the step."""
    await session.execute(
        _RECORD,
        {
            "id": transaction_id,
            "created_at": created_at,
            "state": state,
            "detail": json.dumps(detail, default=str),
        },
    )


async def steps(session: AsyncSession, transaction_id: uuid.UUID) -> list[SagaStep]:
    """The steps of one transaction's saga, oldest first (a saga starts with its row)."""
    rows = await session.execute(
        _STEPS, {"id": transaction_id, "created_at": uuid7_time(transaction_id)}
    )
    found = []
    for row in rows.mappings():
        detail = row["detail"]
        found.append(
            SagaStep(
                row["state"], json.loads(detail) if isinstance(detail, str) else detail, row["at"]
            )
        )
    return found


async def sagas_in(
    session: AsyncSession, state: str, *, idle_for: timedelta, limit: int = 100
) -> list[uuid.UUID]:
    """Transactions whose saga has been in ``state`` for at least ``idle_for``, oldest first."""
    rows = await session.execute(
        _NEEDING_ATTENTION,
        {"state": state, "idle": idle_for.total_seconds(), "limit": limit},
    )
    return [uuid.UUID(str(value)) for value in rows.scalars()]
