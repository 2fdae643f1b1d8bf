"""Concurrent writers on committed data: >= 1,000 transfers from 32 tasks among 50 accounts.

These tests commit for real on many connections (a rolled-back transaction would prove
nothing about locking); they work on accounts of their own and leave a valid ledger behind.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.kit.errors import ConflictError, InsufficientFundsError
from diboas.ledger import holds, service
from diboas.ledger.models import Account, AccountKind
from diboas.ledger.verify import verify_ledger
from tests.ledger.factories import user_account

pytestmark = pytest.mark.concurrency

ACCOUNTS = 50
TASKS = 32
TRANSFERS_PER_TASK = 32  # 1,024 in all


async def _balances(sessions: SessionFactory, accounts: list[Account]) -> dict[int, Decimal]:
    async def read(session: AsyncSession) -> dict[int, Decimal]:
        rows = await session.execute(
            text("SELECT account_id, balance FROM balances WHERE account_id = ANY(:ids)"),
            {"ids": [a.id for a in accounts]},
        )
        return {r.account_id: r.balance for r in rows}

    return await run_in_transaction(sessions, read)


async def test_concurrent_transfers_keep_every_invariant(
    sessions: SessionFactory, engine: AsyncEngine
) -> None:
    rng = random.Random(20261125)
    run = uuid.uuid4().hex[:8]

    async def seed(session: AsyncSession) -> list[Account]:
        return [
            await user_account(session, funded=f"{rng.randint(1, 200)}.{rng.randint(0, 99):02d}")
            for _ in range(ACCOUNTS)
        ]

    accounts = await run_in_transaction(sessions, seed)
    before = await _balances(sessions, accounts)
    total_before = sum(before.values())
    accepted: list[str] = []
    refused: list[str] = []
    unexpected: list[BaseException] = []

    async def worker(task: int) -> None:
        local = random.Random(task)
        for n in range(TRANSFERS_PER_TASK):
            source, destination = local.sample(accounts, 2)
            # Up to twice the mean balance: a good share of these overdraw and are refused.
            amount = Decimal(local.randint(1, 40_000)) / 100
            reference = f"conc:{run}:{task}:{n}"

            async def move(
                session: AsyncSession,
                s: Account = source,
                d: Account = destination,
                a: Decimal = amount,
                r: str = reference,
            ) -> None:
                await service.transfer(session, source=s, destination=d, amount=a, reference=r)

            try:
                await run_in_transaction(sessions, move)
                accepted.append(reference)
            except InsufficientFundsError:
                refused.append(reference)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                unexpected.append(exc)

    await asyncio.gather(*(worker(t) for t in range(TASKS)))

    assert unexpected == []  # no deadlock or serialization failure reached a caller
    assert len(accepted) + len(refused) == TASKS * TRANSFERS_PER_TASK >= 1000
    assert accepted and refused  # both paths really ran
    after = await _balances(sessions, accounts)
    assert sum(after.values()) == total_before
    assert min(after.values()) >= 0

    async def references(session: AsyncSession) -> dict[str, int]:
        rows = await session.execute(
            text(
                "SELECT reference, count(*) AS n FROM entries WHERE reference LIKE :p GROUP BY reference"
            ),
            {"p": f"conc:{run}:%"},
        )
        return {r.reference: r.n for r in rows}

    stored = await run_in_transaction(sessions, references)
    assert set(stored) == set(accepted)
    assert set(stored.values()) == {1}

    async with engine.connect() as conn:
        report = await verify_ledger(conn)
    assert report.ok, report.summary()


async def test_one_hold_captured_concurrently_is_captured_once(sessions: SessionFactory) -> None:
    async def setup(session: AsyncSession) -> tuple[Account, Account, uuid.UUID]:
        account = await user_account(session, funded="100.00")
        clearing = await service.platform_account(
            session, asset="USD", kind=AccountKind.CLEARING, shard=7
        )
        hold = await holds.place_hold(session, account=account, amount=Decimal("60.00"))
        return account, clearing, hold.id

    account, clearing, hold_id = await run_in_transaction(sessions, setup)

    async def capture() -> bool:
        try:
            await run_in_transaction(
                sessions, lambda s: holds.capture_hold(s, hold_id, destination=clearing)
            )
        except ConflictError:
            return False
        return True

    results = await asyncio.gather(*(capture() for _ in range(12)))
    assert results.count(True) == 1

    async def state(session: AsyncSession) -> tuple[Decimal, Decimal]:
        return (
            (await service.balance(session, account.id)).balance,
            (await holds.get_hold(session, hold_id)).captured,
        )

    assert await run_in_transaction(sessions, state) == (Decimal("40.00"), Decimal("60.00"))
