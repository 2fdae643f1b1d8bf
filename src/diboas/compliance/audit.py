"""The append-only audit log of sensitive actions.

Written in the same transaction as the action it records (so an action that rolls back leaves
no audit row claiming it happened); refusals and failures, whose own transaction rolls back,
are recorded with ``record_separately``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction

if TYPE_CHECKING:
    from starlette.requests import Request

    from diboas.identity.repository import User

_INSERT = text("""
    INSERT INTO audit_log (actor_id, actor_role, action, outcome, subject_type, subject_id, ip,
                           request_id, details)
    VALUES (:actor_id, :actor_role, :action, :outcome, :subject_type, :subject_id, :ip,
            :request_id, CAST(:details AS jsonb))
""")


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Who acts, from where, in which request."""

    actor_id: uuid.UUID | None = None
    actor_role: str | None = None
    ip: str | None = None
    request_id: str | None = None


def request_context(request: Request, user: User | None) -> AuditContext:
    """The audit context of an HTTP request made by ``user`` (None when signed out)."""
    return AuditContext(
        actor_id=None if user is None else user.id,
        actor_role=None if user is None else user.role,
        ip=request.client.host if request.client else None,
        request_id=getattr(request.state, "request_id", None),
    )


async def record(
    session: AsyncSession,
    context: AuditContext,
    action: str,
    *,
    outcome: str = "success",
    subject_type: str | None = None,
    subject_id: str | uuid.UUID | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write one audit row in the caller's transaction."""
    request_id = context.request_id or structlog.contextvars.get_contextvars().get("request_id")
    await session.execute(
        _INSERT,
        {
            "actor_id": context.actor_id,
            "actor_role": context.actor_role,
            "action": action,
            "outcome": outcome,
            "subject_type": subject_type,
            "subject_id": None if subject_id is None else str(subject_id),
            "ip": context.ip,
            "request_id": request_id,
            "details": json.dumps(details or {}, default=str),
        },
    )


async def record_separately(
    sessions: SessionFactory,
    context: AuditContext,
    action: str,
    **fields: Any,
) -> None:
    """Write one audit row in a transaction of its own (for refusals and failures)."""
    await run_in_transaction(sessions, lambda s: record(s, context, action, **fields))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit row as read back."""

    id: int
    created_at: datetime
    actor_id: uuid.UUID | None
    actor_role: str | None
    action: str
    outcome: str
    subject_type: str | None
    subject_id: str | None
    ip: str | None
    request_id: str | None
    details: dict[str, Any]


async def entries(
    session: AsyncSession,
    *,
    actor_id: uuid.UUID | None = None,
    action: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AuditEntry]:
    """Audit rows, newest first, optionally for one actor or action."""
    rows = await session.execute(
        text("""
            SELECT id, created_at, actor_id, actor_role, action, outcome, subject_type, subject_id,
                   ip, request_id, details
              FROM audit_log
             WHERE (CAST(:actor AS uuid) IS NULL OR actor_id = :actor)
               AND (CAST(:action AS text) IS NULL OR action = :action)
               AND (CAST(:before AS bigint) IS NULL OR id < :before)
             ORDER BY id DESC LIMIT :limit
        """),
        {"actor": actor_id, "action": action, "before": before_id, "limit": limit},
    )
    return [AuditEntry(**r._mapping) for r in rows]
