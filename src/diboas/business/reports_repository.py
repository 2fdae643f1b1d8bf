"""The SQL behind the business reports: the organisation's ledger movements (CSV export) and
its audit log."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class Movement:
    """One posting on one of the organisation's ledger accounts."""

    created_at: datetime
    entry_id: int
    kind: str
    domain: str
    asset: str
    scale: int
    amount: Decimal
    balance_after: Decimal
    reference: str | None
    counterparty_email: str | None
    note: str | None
    account_id: int


async def movements(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[Movement]:
    """The organisation's postings, oldest first (at most ``limit``)."""
    rows = await session.execute(
        text("""
            SELECT p.created_at, p.entry_id, e.kind, a.domain, a.asset, s.scale, p.amount,
                   p.balance_after, e.reference, u.email AS counterparty_email,
                   e.metadata ->> 'note' AS note, a.id AS account_id
              FROM accounts a
              JOIN assets s ON s.code = a.asset
              JOIN postings p ON p.account_id = a.id
              JOIN entries e ON e.id = p.entry_id AND e.created_at = p.created_at
              LEFT JOIN users u ON u.id = CAST(e.metadata ->> 'counterparty_user_id' AS uuid)
             WHERE a.owner_type = 'organisation' AND a.owner_id = :org
               AND (CAST(:since AS timestamptz) IS NULL OR p.created_at >= :since)
               AND (CAST(:until AS timestamptz) IS NULL OR p.created_at < :until)
             ORDER BY p.created_at, p.entry_id, a.id
             LIMIT :limit
        """),
        {"org": organisation_id, "since": since, "until": until, "limit": limit},
    )
    return [Movement(**r._mapping) for r in rows]


async def movements_page(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    *,
    before: tuple[datetime, int, int] | None,
    limit: int,
) -> list[Movement]:
    """The organisation's postings, newest first, strictly before the (created_at, entry id,
    account id) of ``before`` when given."""
    rows = await session.execute(
        text("""
            SELECT p.created_at, p.entry_id, e.kind, a.domain, a.asset, s.scale, p.amount,
                   p.balance_after, e.reference, u.email AS counterparty_email,
                   e.metadata ->> 'note' AS note, a.id AS account_id
              FROM accounts a
              JOIN assets s ON s.code = a.asset
              JOIN postings p ON p.account_id = a.id
              JOIN entries e ON e.id = p.entry_id AND e.created_at = p.created_at
              LEFT JOIN users u ON u.id = CAST(e.metadata ->> 'counterparty_user_id' AS uuid)
             WHERE a.owner_type = 'organisation' AND a.owner_id = :org
               AND (CAST(:at AS timestamptz) IS NULL
                    OR (p.created_at, p.entry_id, a.id) < (:at, :entry, :account))
             ORDER BY p.created_at DESC, p.entry_id DESC, a.id DESC
             LIMIT :limit
        """),
        {
            "org": organisation_id,
            "at": None if before is None else before[0],
            "entry": None if before is None else before[1],
            "account": None if before is None else before[2],
            "limit": limit,
        },
    )
    return [Movement(**r._mapping) for r in rows]


@dataclass(frozen=True, slots=True)
class AuditRow:
    """An audit row about an organisation."""

    id: int
    created_at: datetime
    actor_id: uuid.UUID | None
    actor_email: str | None
    actor_role: str | None
    action: str
    outcome: str
    ip: str | None
    request_id: str | None
    details: dict[str, Any]


async def audit_rows(
    session: AsyncSession, organisation_id: uuid.UUID, *, limit: int, before_id: int | None
) -> list[AuditRow]:
    """The organisation's audit rows, newest first (written with subject ``organisation``)."""
    rows = await session.execute(
        text("""
            SELECT l.id, l.created_at, l.actor_id, u.email AS actor_email, l.actor_role,
                   l.action, l.outcome, l.ip, l.request_id, l.details
              FROM audit_log l LEFT JOIN users u ON u.id = l.actor_id
             WHERE l.subject_type = 'organisation' AND l.subject_id = :org
               AND (CAST(:before AS bigint) IS NULL OR l.id < :before)
             ORDER BY l.id DESC LIMIT :limit
        """),
        {"org": str(organisation_id), "before": before_id, "limit": limit},
    )
    found = []
    for r in rows:
        values = dict(r._mapping)
        # text() queries carry no column types: asyncpg hands jsonb over as its text form.
        if isinstance(values["details"], str):
            values["details"] = json.loads(values["details"])
        found.append(AuditRow(**values))
    return found
