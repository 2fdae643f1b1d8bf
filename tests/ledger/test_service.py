"""The ledger service: accounts, entries, transfers and balances (rolled-back session)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.kit.errors import (
    InsufficientFundsError,
    InvalidAmountError,
    LedgerRuleError,
    NotFoundError,
)
from diboas.ledger import service
from diboas.ledger.models import AccountKind, Domain, OwnerType
from tests.ledger.factories import user_account


async def test_transfer_moves_money_and_keeps_the_entry_balanced(session: AsyncSession) -> None:
    alice = await user_account(session, funded="100.00")
    bob = await user_account(session)

    entry = await service.transfer(session, source=alice, destination=bob, amount=Decimal("30.25"))

    assert (await service.balance(session, alice.id)).balance == Decimal("69.75")
    assert (await service.balance(session, bob.id)).balance == Decimal("30.25")
    rows = (
        await session.execute(
            text("SELECT account_id, amount FROM postings WHERE entry_id = :e ORDER BY amount"),
            {"e": entry.id},
        )
    ).all()
    assert [(r.account_id, r.amount) for r in rows] == [
        (alice.id, Decimal("-30.25")),
        (bob.id, Decimal("30.25")),
    ]


async def test_opening_an_account_twice_returns_the_same_account(session: AsyncSession) -> None:
    owner = uuid.uuid4()
    first = await service.customer_account(
        session, owner_type=OwnerType.USER, owner_id=owner, domain=Domain.DEFI, asset="ETH"
    )
    again = await service.customer_account(
        session, owner_type=OwnerType.USER, owner_id=owner, domain=Domain.DEFI, asset="ETH"
    )
    assert first == again
    assert first.scale == 18


async def test_unknown_asset_is_refused(session: AsyncSession) -> None:
    with pytest.raises(NotFoundError):
        await service.customer_account(
            session,
            owner_type=OwnerType.USER,
            owner_id=uuid.uuid4(),
            domain=Domain.BANKING,
            asset="XYZ",
        )


async def test_insufficient_funds_says_what_is_available(session: AsyncSession) -> None:
    alice = await user_account(session, funded="10.00")
    bob = await user_account(session)

    with pytest.raises(InsufficientFundsError) as refused:
        await service.transfer(session, source=alice, destination=bob, amount=Decimal("10.01"))

    assert refused.value.details == {
        "account_id": alice.id,
        "asset": "USD",
        "available": "10.00",
        "requested": "10.01",
    }


async def test_refused_transfer_changes_nothing(session: AsyncSession) -> None:
    alice = await user_account(session, funded="5.00")
    bob = await user_account(session)
    with pytest.raises(InsufficientFundsError):
        async with session.begin_nested():
            await service.transfer(session, source=alice, destination=bob, amount=Decimal("6"))
    assert (await service.balance(session, alice.id)).balance == Decimal("5.00")
    assert (await service.balance(session, bob.id)).posting_count == 0


@pytest.mark.parametrize("amount", ["0", "-1", "0.001", "1e3", "NaN", "Infinity", "", "1,000"])
async def test_bad_amounts_are_refused_before_anything_is_written(
    session: AsyncSession, amount: str
) -> None:
    alice = await user_account(session, funded="100.00")
    bob = await user_account(session)
    with pytest.raises(InvalidAmountError):
        await service.transfer(session, source=alice, destination=bob, amount=amount)  # type: ignore[arg-type]
    assert (await service.balance(session, alice.id)).balance == Decimal("100.00")


async def test_transfer_between_assets_is_refused(session: AsyncSession) -> None:
    usd = await user_account(session, funded="100.00")
    btc = await user_account(session, asset="BTC")
    with pytest.raises(LedgerRuleError):
        await service.transfer(session, source=usd, destination=btc, amount=Decimal("1"))


async def test_an_unbalanced_entry_is_refused_by_the_service(session: AsyncSession) -> None:
    alice = await user_account(session, funded="100.00")
    bob = await user_account(session)
    with pytest.raises(LedgerRuleError) as refused:
        await service.post_entry(
            session, kind="test", postings=[(alice, Decimal("-5")), (bob, Decimal("4"))]
        )
    assert refused.value.details == {"totals": {"USD": "-1"}}


async def test_platform_external_account_may_go_negative(session: AsyncSession) -> None:
    await user_account(session, funded="250.00")
    external = await service.platform_account(session, asset="USD", kind=AccountKind.EXTERNAL)
    assert (await service.balance(session, external.id)).balance <= Decimal("-250.00")


async def test_multi_asset_entry_balances_per_asset(session: AsyncSession) -> None:
    """A trade: USD out, BTC in, each leg balanced against the platform's clearing."""
    owner = uuid.uuid4()
    usd = await user_account(session, funded="1000.00", owner_id=owner)
    btc = await user_account(session, asset="BTC", domain=Domain.INVESTING, owner_id=owner)
    usd_clearing = await service.platform_account(session, asset="USD", kind=AccountKind.CLEARING)
    btc_clearing = await service.platform_account(session, asset="BTC", kind=AccountKind.CLEARING)
    await service.post_entry(
        session,
        kind="trade",
        postings=[
            (usd, Decimal("-500.00")),
            (usd_clearing, Decimal("500.00")),
            (btc_clearing, Decimal("-0.00512345")),
            (btc, Decimal("0.00512345")),
        ],
    )
    assert (await service.balance(session, btc.id)).balance == Decimal("0.00512345")


async def test_balance_as_of_a_past_instant(session: AsyncSession) -> None:
    alice = await user_account(session)
    external = await service.platform_account(session, asset="USD", kind=AccountKind.EXTERNAL)
    before_any = datetime.now(UTC) - timedelta(seconds=1)
    await service.transfer(session, source=external, destination=alice, amount=Decimal("10.00"))
    await asyncio.sleep(0.01)
    between = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await service.transfer(session, source=external, destination=alice, amount=Decimal("5.00"))

    assert (await service.balance_as_of(session, alice.id, before_any)).balance == 0
    at_between = await service.balance_as_of(session, alice.id, between)
    assert at_between.balance == Decimal("10.00")
    assert at_between.final is False  # within the commit window: not yet final
    now = await service.balance_as_of(session, alice.id, datetime.now(UTC))
    assert now.balance == Decimal("15.00")
    long_ago = await service.balance_as_of(session, alice.id, datetime.now(UTC) - timedelta(days=1))
    assert long_ago.final is True
