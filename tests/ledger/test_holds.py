"""Holds: place, capture (whole or part), release, expire — each a balanced entry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.kit.errors import (
    ConflictError,
    InsufficientFundsError,
    InvalidAmountError,
    LedgerRuleError,
)
from diboas.ledger import holds, service
from diboas.ledger.holds import HoldStatus
from diboas.ledger.models import Account, AccountKind
from tests.ledger.factories import user_account


async def _available(session: AsyncSession, account: Account) -> Decimal:
    return (await service.balance(session, account.id)).balance


async def _entry_kinds(session: AsyncSession, hold_id: object) -> list[str]:
    rows = await session.execute(
        text("SELECT kind FROM entries WHERE reference = :r ORDER BY id"), {"r": f"hold:{hold_id}"}
    )
    return list(rows.scalars())


async def test_place_moves_funds_to_the_held_account(session: AsyncSession) -> None:
    account = await user_account(session, funded="100.00")
    hold = await holds.place_hold(session, account=account, amount=Decimal("40.00"))
    assert await _available(session, account) == Decimal("60.00")
    assert (await service.balance(session, hold.held_account_id)).balance == Decimal("40.00")
    assert hold.status is HoldStatus.ACTIVE and hold.remaining == Decimal("40.00")


async def test_hold_beyond_the_balance_is_refused(session: AsyncSession) -> None:
    account = await user_account(session, funded="10.00")
    with pytest.raises(InsufficientFundsError):
        await holds.place_hold(session, account=account, amount=Decimal("10.01"))


async def test_hold_on_a_platform_account_is_refused(session: AsyncSession) -> None:
    clearing = await service.platform_account(session, asset="USD", kind=AccountKind.CLEARING)
    with pytest.raises(LedgerRuleError):
        await holds.place_hold(session, account=clearing, amount=Decimal("1"))


async def test_whole_capture_pays_the_destination(session: AsyncSession) -> None:
    account = await user_account(session, funded="100.00")
    clearing = await service.platform_account(session, asset="USD", kind=AccountKind.CLEARING)
    before = (await service.balance(session, clearing.id)).balance
    hold = await holds.place_hold(session, account=account, amount=Decimal("25.00"))

    captured = await holds.capture_hold(session, hold.id, destination=clearing)

    assert captured.status is HoldStatus.CAPTURED and captured.captured == Decimal("25.00")
    assert (await service.balance(session, clearing.id)).balance - before == Decimal("25.00")
    assert (await service.balance(session, hold.held_account_id)).balance == 0
    assert await _available(session, account) == Decimal("75.00")
    assert await _entry_kinds(session, hold.id) == ["hold.place", "hold.capture"]


async def test_partial_capture_releases_the_rest(session: AsyncSession) -> None:
    account = await user_account(session, funded="100.00")
    clearing = await service.platform_account(session, asset="USD", kind=AccountKind.CLEARING)
    hold = await holds.place_hold(session, account=account, amount=Decimal("50.00"))

    done = await holds.capture_hold(session, hold.id, destination=clearing, amount=Decimal("20.00"))

    assert (done.captured, done.released, done.status) == (
        Decimal("20.00"),
        Decimal("30.00"),
        HoldStatus.CAPTURED,
    )
    assert await _available(session, account) == Decimal("80.00")
    assert (await service.balance(session, hold.held_account_id)).balance == 0


async def test_several_partial_captures_then_release(session: AsyncSession) -> None:
    account = await user_account(session, funded="100.00")
    clearing = await service.platform_account(session, asset="USD", kind=AccountKind.CLEARING)
    hold = await holds.place_hold(session, account=account, amount=Decimal("50.00"))

    step = await holds.capture_hold(
        session, hold.id, destination=clearing, amount=Decimal("10.00"), release_remainder=False
    )
    assert step.status is HoldStatus.ACTIVE and step.remaining == Decimal("40.00")
    step = await holds.capture_hold(
        session, hold.id, destination=clearing, amount=Decimal("15.00"), release_remainder=False
    )
    final = await holds.release_hold(session, hold.id)

    assert (final.captured, final.released, final.status) == (
        Decimal("25.00"),
        Decimal("25.00"),
        HoldStatus.CAPTURED,
    )
    assert await _available(session, account) == Decimal("75.00")


async def test_capture_more_than_remains_is_refused(session: AsyncSession) -> None:
    account = await user_account(session, funded="100.00")
    clearing = await service.platform_account(session, asset="USD", kind=AccountKind.CLEARING)
    hold = await holds.place_hold(session, account=account, amount=Decimal("5.00"))
    with pytest.raises(InvalidAmountError):
        await holds.capture_hold(session, hold.id, destination=clearing, amount=Decimal("5.01"))


async def test_release_returns_everything(session: AsyncSession) -> None:
    account = await user_account(session, funded="100.00")
    hold = await holds.place_hold(session, account=account, amount=Decimal("60.00"))
    released = await holds.release_hold(session, hold.id)
    assert released.status is HoldStatus.RELEASED
    assert await _available(session, account) == Decimal("100.00")


async def test_a_closed_hold_cannot_be_used_again(session: AsyncSession) -> None:
    account = await user_account(session, funded="100.00")
    clearing = await service.platform_account(session, asset="USD", kind=AccountKind.CLEARING)
    hold = await holds.place_hold(session, account=account, amount=Decimal("60.00"))
    await holds.release_hold(session, hold.id)
    with pytest.raises(ConflictError):
        await holds.capture_hold(session, hold.id, destination=clearing)
    with pytest.raises(ConflictError):
        await holds.release_hold(session, hold.id)


async def test_expired_holds_are_released(session: AsyncSession) -> None:
    account = await user_account(session, funded="100.00")
    now = datetime.now(UTC)
    stale = await holds.place_hold(
        session, account=account, amount=Decimal("30.00"), expires_at=now - timedelta(seconds=1)
    )
    fresh = await holds.place_hold(
        session, account=account, amount=Decimal("20.00"), expires_at=now + timedelta(hours=1)
    )

    expired = await holds.expire_holds(session, now=now)

    assert expired >= 1
    assert (await holds.get_hold(session, stale.id)).status is HoldStatus.EXPIRED
    assert (await holds.get_hold(session, fresh.id)).status is HoldStatus.ACTIVE
    assert await _available(session, account) == Decimal("80.00")
    assert await _entry_kinds(session, stale.id) == ["hold.place", "hold.expire"]


async def test_capture_split_among_destinations_is_one_entry(session: AsyncSession) -> None:
    """A payout and its fee leave the hold together: one entry, nothing returns to available."""
    account = await user_account(session, funded="100.00")
    external = await service.platform_account(session, asset="USD", kind=AccountKind.EXTERNAL)
    fees = await service.platform_account(session, asset="USD", kind=AccountKind.FEES, shard=3)
    fees_before = (await service.balance(session, fees.id)).balance
    hold = await holds.place_hold(session, account=account, amount=Decimal("51.00"))

    done = await holds.capture_hold(
        session, hold.id, destinations=[(external, Decimal("50.00")), (fees, Decimal("0.75"))]
    )

    assert (done.captured, done.released, done.status) == (
        Decimal("50.75"),
        Decimal("0.25"),
        HoldStatus.CAPTURED,
    )
    assert await _available(session, account) == Decimal("49.25")
    assert (await service.balance(session, fees.id)).balance - fees_before == Decimal("0.75")
    assert await _entry_kinds(session, hold.id) == ["hold.place", "hold.capture"]


async def test_capture_needs_exactly_one_way_to_name_destinations(session: AsyncSession) -> None:
    account = await user_account(session, funded="10.00")
    clearing = await service.platform_account(session, asset="USD", kind=AccountKind.CLEARING)
    hold = await holds.place_hold(session, account=account, amount=Decimal("5.00"))
    with pytest.raises(LedgerRuleError):
        await holds.capture_hold(session, hold.id)
    with pytest.raises(LedgerRuleError):
        await holds.capture_hold(
            session, hold.id, destination=clearing, destinations=[(clearing, Decimal("1"))]
        )
