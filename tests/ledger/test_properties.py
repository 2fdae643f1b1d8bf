"""Property tests: random sequences of entries and holds keep every ledger invariant.

A plain Python model predicts each outcome (including refusals for insufficient funds); after
every step the database must agree with it, and at the end the deferred checks pass and
`ledger verify` finds nothing. Each example runs in its own rolled-back transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from diboas.kit.errors import ConflictError, InsufficientFundsError, InvalidAmountError
from diboas.ledger import holds, service
from diboas.ledger.models import Account, AccountKind
from diboas.ledger.verify import verify_ledger
from tests.ledger.factories import user_account

USERS = 4
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("300.00"), places=2)
user = st.integers(min_value=0, max_value=USERS - 1)
hold_ref = st.integers(min_value=0, max_value=7)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("deposit"), user, amounts),
        st.tuples(st.just("withdraw"), user, amounts),
        st.tuples(st.just("transfer"), user, user, amounts),
        st.tuples(st.just("hold"), user, amounts),
        st.tuples(st.just("capture"), hold_ref, st.none() | amounts, st.booleans()),
        st.tuples(st.just("release"), hold_ref),
        st.tuples(st.just("expire"), hold_ref),
    ),
    min_size=1,
    max_size=25,
)


@dataclass
class Model:
    """What the ledger should hold after each step."""

    available: list[Decimal]
    held: list[Decimal]
    holds: list[tuple[Any, int, Decimal]] = field(
        default_factory=list
    )  # (hold id, user, remaining)


async def _apply(
    session: AsyncSession,
    op: tuple[Any, ...],
    accounts: list[Account],
    clearing: Account,
    external: Account,
    model: Model,
) -> None:
    name = op[0]
    if name == "deposit":
        _, i, amount = op
        await service.transfer(session, source=external, destination=accounts[i], amount=amount)
        model.available[i] += amount
    elif name == "withdraw":
        _, i, amount = op
        if model.available[i] < amount:
            await _expect_refusal(
                session,
                InsufficientFundsError,
                service.transfer(session, source=accounts[i], destination=external, amount=amount),
            )
            return
        await service.transfer(session, source=accounts[i], destination=external, amount=amount)
        model.available[i] -= amount
    elif name == "transfer":
        _, i, j, amount = op
        if i == j:
            return
        if model.available[i] < amount:
            await _expect_refusal(
                session,
                InsufficientFundsError,
                service.transfer(
                    session, source=accounts[i], destination=accounts[j], amount=amount
                ),
            )
            return
        await service.transfer(session, source=accounts[i], destination=accounts[j], amount=amount)
        model.available[i] -= amount
        model.available[j] += amount
    elif name == "hold":
        _, i, amount = op
        if model.available[i] < amount:
            await _expect_refusal(
                session,
                InsufficientFundsError,
                holds.place_hold(session, account=accounts[i], amount=amount),
            )
            return
        hold = await holds.place_hold(session, account=accounts[i], amount=amount)
        model.available[i] -= amount
        model.held[i] += amount
        model.holds.append((hold.id, i, amount))
    elif name in ("capture", "release", "expire"):
        await _settle_hold(session, op, clearing, model)


async def _settle_hold(
    session: AsyncSession, op: tuple[Any, ...], clearing: Account, model: Model
) -> None:
    if not model.holds:
        return
    index = op[1] % len(model.holds)
    hold_id, i, remaining = model.holds[index]
    if remaining == 0:
        call = (
            holds.capture_hold(session, hold_id, destination=clearing)
            if op[0] == "capture"
            else holds.release_hold(session, hold_id)
        )
        await _expect_refusal(session, ConflictError, call)
        return
    if op[0] == "capture":
        _, _, amount, release_rest = op
        if amount is not None and amount > remaining:
            await _expect_refusal(
                session,
                InvalidAmountError,
                holds.capture_hold(session, hold_id, destination=clearing, amount=amount),
            )
            return
        taken = remaining if amount is None else amount
        await holds.capture_hold(
            session, hold_id, destination=clearing, amount=amount, release_remainder=release_rest
        )
        back = remaining - taken if release_rest else Decimal(0)
        model.held[i] -= taken + back
        model.available[i] += back
        model.holds[index] = (hold_id, i, remaining - taken - back)
    elif op[0] == "release":
        await holds.release_hold(session, hold_id)
        model.held[i] -= remaining
        model.available[i] += remaining
        model.holds[index] = (hold_id, i, Decimal(0))
    else:
        await session.execute(
            text("UPDATE holds SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": hold_id},
        )
        await holds.expire_holds(session, now=datetime.now(UTC) + timedelta(seconds=1))
        model.held[i] -= remaining
        model.available[i] += remaining
        model.holds[index] = (hold_id, i, Decimal(0))


async def _expect_refusal(session: AsyncSession, error: type[Exception], call: Any) -> None:
    """The call must be refused, and its refusal must leave no trace."""
    savepoint = await session.begin_nested()
    try:
        await call
    except error:
        await savepoint.rollback()
        return
    raise AssertionError(f"expected {error.__name__}")


async def _check(session: AsyncSession, accounts: list[Account], model: Model) -> None:
    for i, account in enumerate(accounts):
        available = (await service.balance(session, account.id)).balance
        assert available == model.available[i] and available >= 0
    for i, account in enumerate(accounts):
        held = await service.customer_account(
            session,
            owner_type=account.owner_type,
            owner_id=account.owner_id,
            domain=account.domain,
            asset="USD",
            kind=AccountKind.HELD,
        )
        assert (await service.balance(session, held.id)).balance == model.held[i]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
@given(ops=operations)
async def test_random_sequences_keep_every_invariant(
    engine: AsyncEngine, ops: list[tuple[Any, ...]]
) -> None:
    async with engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(bind=conn, join_transaction_mode="create_savepoint")
        try:
            accounts = [await user_account(session, funded="100.00") for _ in range(USERS)]
            clearing = await service.platform_account(
                session, asset="USD", kind=AccountKind.CLEARING
            )
            external = await service.platform_account(
                session, asset="USD", kind=AccountKind.EXTERNAL
            )
            model = Model(available=[Decimal("100.00")] * USERS, held=[Decimal(0)] * USERS)
            for op in ops:
                await _apply(session, op, accounts, clearing, external, model)
                await _check(session, accounts, model)
            # Everything the deferred triggers would check at commit, checked now.
            await session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
            totals = await session.execute(
                text(
                    "SELECT asset, sum(amount) FROM postings GROUP BY asset HAVING sum(amount) <> 0"
                )
            )
            assert totals.all() == []
            report = await verify_ledger(conn, own_snapshot=False)
            assert report.ok, report.summary()
        finally:
            await session.close()
            await outer.rollback()
