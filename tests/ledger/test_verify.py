"""`ledger verify` finds every kind of break precisely, and the CLI reports it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.migrate import upgrade
from diboas.db.urls import plain_url, with_database
from diboas.ledger import service
from diboas.ledger.verify import VerifyReport, verify_ledger
from tests.ledger.factories import user_account


async def _report(session: AsyncSession) -> VerifyReport:
    return await verify_ledger(await session.connection(), own_snapshot=False)


async def _tamper(session: AsyncSession, sql: str, **params: object) -> None:
    """Change rows past the ledger's triggers, as only a superuser could."""
    await session.execute(text("SET LOCAL session_replication_role = replica"))
    await session.execute(text(sql), params)
    await session.execute(text("SET LOCAL session_replication_role = origin"))


async def test_an_honest_ledger_verifies(session: AsyncSession) -> None:
    alice = await user_account(session, funded="100.00")
    bob = await user_account(session)
    await service.transfer(session, source=alice, destination=bob, amount=Decimal("1.00"))
    # What commit would check, checked now: the deferred triggers pass.
    await session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
    report = await _report(session)
    assert report.ok, report.summary()
    assert report.postings >= 4 and report.entries >= 2


async def test_an_altered_amount_is_reported_as_unbalanced_and_broken(
    session: AsyncSession,
) -> None:
    alice = await user_account(session, funded="100.00")
    await _tamper(session, "UPDATE postings SET amount = 1000.00 WHERE account_id = :a", a=alice.id)
    report = await _report(session)
    kinds = {(b.kind, b.subject.split(" seq")[0]) for b in report.breaks}
    assert any(b.kind == "unbalanced" and "postings sum to" in b.message for b in report.breaks)
    assert ("balance", f"account {alice.id}") in kinds
    assert ("chain", f"account {alice.id}") in kinds
    assert "ledger BROKEN" in report.summary()


async def test_a_forged_balance_is_reported(session: AsyncSession) -> None:
    alice = await user_account(session, funded="100.00")
    await _tamper(session, "UPDATE balances SET balance = 5000 WHERE account_id = :a", a=alice.id)
    report = await _report(session)
    assert [str(b) for b in report.breaks if b.subject == f"account {alice.id}"] == [
        f"[balance] account {alice.id}: stored 5000 but postings sum to 100.00"
    ]


async def test_a_deleted_posting_breaks_the_chain(session: AsyncSession) -> None:
    alice = await user_account(session, funded="100.00")
    bob = await user_account(session)
    await service.transfer(session, source=alice, destination=bob, amount=Decimal("10.00"))
    await service.transfer(session, source=alice, destination=bob, amount=Decimal("20.00"))
    await _tamper(
        session, "DELETE FROM postings WHERE account_id = :a AND account_seq = 2", a=alice.id
    )
    report = await _report(session)
    messages = [str(b) for b in report.breaks if b.subject.startswith(f"account {alice.id} seq 3")]
    assert any("follows seq 1" in m for m in messages), report.summary()
    assert any(b.kind == "unbalanced" for b in report.breaks)


async def test_a_rewritten_hash_is_reported(session: AsyncSession) -> None:
    alice = await user_account(session, funded="100.00")
    await _tamper(
        session,
        "UPDATE postings SET hash = sha256('forged'::bytea) WHERE account_id = :a",
        a=alice.id,
    )
    report = await _report(session)
    assert any(
        b.kind == "chain"
        and "hash does not match" in b.message
        and b.subject.startswith(f"account {alice.id}")
        for b in report.breaks
    )


@pytest.fixture
async def scratch_database(database_server: str) -> AsyncIterator[URL]:
    """A database of its own, for a test that must commit a broken ledger."""
    name = f"diboas_scratch_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(plain_url(with_database(database_server, "postgres")))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(database_server, name)
    try:
        await upgrade(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def _cli_verify(url: URL) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DIBOAS_DATABASE_URL": plain_url(url)}
    return subprocess.run(
        [sys.executable, "-m", "diboas.cli", "ledger", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_cli_exit_codes(scratch_database: URL) -> None:
    raw = await asyncpg.connect(plain_url(scratch_database))
    try:
        ids = [
            await raw.fetchval(
                "INSERT INTO accounts (owner_type, owner_id, domain, asset, kind) VALUES ($1, $2, $3, 'USD', $4) RETURNING id",
                *spec,
            )
            for spec in (
                ("platform", uuid.UUID(int=0), "platform", "external"),
                ("user", uuid.uuid4(), "banking", "available"),
            )
        ]
        await raw.execute(
            "SELECT ledger_post('deposit', $1::bigint[], $2::numeric[])",
            ids,
            [Decimal("-9.99"), Decimal("9.99")],
        )
        healthy = _cli_verify(scratch_database)
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        assert "ledger OK: 1 entries, 2 postings, 2 accounts" in healthy.stdout

        async with raw.transaction():
            await raw.execute("SET LOCAL session_replication_role = replica")
            await raw.execute("UPDATE postings SET amount = 99.99 WHERE account_id = $1", ids[1])
        broken = _cli_verify(scratch_database)
        assert broken.returncode == 1
        assert "ledger BROKEN" in broken.stdout
        assert f"[balance] account {ids[1]}: stored 9.99 but postings sum to 99.99" in broken.stdout
        assert f"[chain] account {ids[1]} seq 1" in broken.stdout
    finally:
        await raw.close()
