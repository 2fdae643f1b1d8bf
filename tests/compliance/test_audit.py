"""The audit log: written in the caller's transaction (or its own), read newest first with
filters, and append-only even for raw SQL."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.db.engine import SessionFactory


async def test_rows_roll_back_with_the_action(session: AsyncSession) -> None:
    actor = uuid.uuid4()
    nested = await session.begin_nested()
    await audit.record(session, AuditContext(actor_id=actor), "test.action", details={"n": 1})
    assert len(await audit.entries(session, actor_id=actor)) == 1
    await nested.rollback()
    assert await audit.entries(session, actor_id=actor) == []


async def test_entries_filter_and_page_newest_first(session: AsyncSession) -> None:
    actor, other = uuid.uuid4(), uuid.uuid4()
    for n in range(5):
        await audit.record(
            session, AuditContext(actor_id=actor), f"test.step{n % 2}", details={"n": n}
        )
    await audit.record(session, AuditContext(actor_id=other), "test.step0")
    mine = await audit.entries(session, actor_id=actor)
    assert [e.details["n"] for e in mine] == [4, 3, 2, 1, 0]
    evens = await audit.entries(session, actor_id=actor, action="test.step0")
    assert [e.details["n"] for e in evens] == [4, 2, 0]
    page = await audit.entries(session, actor_id=actor, limit=2, before_id=mine[1].id)
    assert [e.details["n"] for e in page] == [2, 1]


async def test_record_separately_survives_the_callers_rollback(
    session: AsyncSession, sessions: SessionFactory
) -> None:
    actor = uuid.uuid4()
    await audit.record_separately(
        sessions,
        AuditContext(actor_id=actor, request_id="req-1"),
        "test.refusal",
        outcome="refused",
    )
    async with sessions() as reader:
        rows = await audit.entries(reader, actor_id=actor)
    assert [(r.action, r.outcome, r.request_id) for r in rows] == [
        ("test.refusal", "refused", "req-1")
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET outcome = 'success' WHERE action = 'test.immutable'",
        "DELETE FROM audit_log WHERE action = 'test.immutable'",
        "TRUNCATE audit_log",
    ],
)
async def test_the_log_is_append_only_even_for_raw_sql(
    raw: asyncpg.Connection, statement: str
) -> None:
    await raw.execute(
        "INSERT INTO audit_log (action, outcome) VALUES ('test.immutable', 'refused')"
    )
    with pytest.raises(asyncpg.PostgresError):
        await raw.execute(statement)
    assert (
        await raw.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'test.immutable' AND outcome = 'refused'"
        )
        >= 1
    )
