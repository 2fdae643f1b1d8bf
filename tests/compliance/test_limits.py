"""Tier limits: tier 0 moves nothing, tier 1 has daily and monthly limits per movement, tier 2
ten times tier 1; email verification when required; refusals say which limit and what remains."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance import audit, limits
from diboas.compliance.audit import AuditContext
from diboas.compliance.limits import (
    EmailVerificationRequiredError,
    KycRequiredError,
    LimitExceededError,
)
from diboas.db.engine import SessionFactory
from diboas.settings import Settings
from tests.compliance.conftest import add_transaction, make_user

SETTINGS = Settings(env="test")


def mid_month() -> datetime:
    """Noon on the 15th of this month (UTC): days before it in the same month exist."""
    return datetime.now(UTC).replace(day=15, hour=12, minute=0, second=0, microsecond=0)


def test_default_limits_are_those_of_the_design() -> None:
    tier1 = limits.limits_for(SETTINGS, 1)
    assert tier1 == {
        "deposit": {"daily": Decimal(10_000), "monthly": Decimal(30_000)},
        "withdrawal": {"daily": Decimal(5_000), "monthly": Decimal(15_000)},
        "transfer": {"daily": Decimal(5_000), "monthly": Decimal(15_000)},
    }
    assert limits.limits_for(SETTINGS, 0) == {}


def test_tier_2_is_ten_times_tier_1() -> None:
    tier1, tier2 = limits.limits_for(SETTINGS, 1), limits.limits_for(SETTINGS, 2)
    assert set(tier2) == set(limits.MOVEMENTS)
    for movement, periods in tier1.items():
        for period, amount in periods.items():
            assert tier2[movement][period] == amount * 10


def test_limits_follow_the_settings() -> None:
    custom = Settings(env="test", tier1_daily_transfer_usd=Decimal(100), tier1_monthly_multiple=5)
    assert limits.limits_for(custom, 1)["transfer"] == {
        "daily": Decimal(100),
        "monthly": Decimal(500),
    }
    assert limits.limits_for(custom, 2)["transfer"]["monthly"] == Decimal(5_000)


async def test_tier_0_moves_no_money(session: AsyncSession) -> None:
    user = await make_user(session, tier=0)
    for movement in limits.MOVEMENTS:
        with pytest.raises(KycRequiredError) as refused:
            await limits.enforce(session, SETTINGS, user, movement, Decimal("0.01"))
        assert refused.value.status_code == 403
        assert refused.value.code == "kyc_required"


async def test_email_verification_is_required_when_the_setting_is_on(
    session: AsyncSession,
) -> None:
    strict = Settings(env="test", require_email_verification=True)
    unverified = await make_user(session, tier=1)
    with pytest.raises(EmailVerificationRequiredError) as refused:
        await limits.enforce(session, strict, unverified, "deposit", Decimal(10))
    assert refused.value.code == "email_verification_required"
    # Off (the test default), the same user may deposit; verified, so may they with it on.
    await limits.enforce(session, SETTINGS, unverified, "deposit", Decimal(10))
    verified = await make_user(session, tier=1, verified=True)
    await limits.enforce(session, strict, verified, "deposit", Decimal(10))


async def test_production_requires_email_verification_by_default() -> None:
    assert Settings(env="test").email_verification_required is False
    assert Settings(env="development").email_verification_required is False
    production = Settings(env="production", secret_key="s" * 40, encryption_key="e" * 40)
    assert production.email_verification_required is True


async def test_tier_1_daily_limit_counts_only_todays_live_movements_of_that_kind(
    session: AsyncSession,
) -> None:
    now = mid_month()
    user = await make_user(session, tier=1)
    morning = now.replace(hour=9)
    await add_transaction(session, user, "deposit", "4000.00", at=morning)
    await add_transaction(session, user, "deposit", "5000.00", at=morning, status="pending")
    # None of these count against today's deposits:
    await add_transaction(session, user, "deposit", "3000.00", at=morning, status="failed")
    await add_transaction(session, user, "deposit", "3000.00", at=morning, status="reversed")
    await add_transaction(session, user, "withdrawal", "2000.00", at=morning)
    await add_transaction(session, user, "deposit", "1.00", at=morning, asset="BTC")
    await add_transaction(session, user, "deposit", "700.00", at=now - timedelta(days=1))

    await limits.enforce(session, SETTINGS, user, "deposit", Decimal("1000.00"), now=now)
    with pytest.raises(LimitExceededError) as refused:
        await limits.enforce(session, SETTINGS, user, "deposit", Decimal("1000.01"), now=now)
    error = refused.value
    assert error.status_code == 422 and error.code == "limit_exceeded"
    assert error.details["limit"] == "daily_deposit"
    assert error.details["limit_usd"] == "10000.00"
    assert error.details["used_usd"] == "9000.00"
    assert error.details["remaining_usd"] == "1000.00"
    assert error.details["requested_usd"] == "1000.01"
    assert "daily deposit limit" in error.message


async def test_tier_1_monthly_limit_counts_the_whole_month(session: AsyncSession) -> None:
    now = mid_month()
    user = await make_user(session, tier=1)
    earlier = now.replace(day=10)
    for _ in range(3):
        await add_transaction(session, user, "deposit", "8000.00", at=earlier)
    await add_transaction(session, user, "deposit", "1000.00", at=earlier, asset="USDC")
    # Last month's movements are another month's business.
    await add_transaction(
        session, user, "deposit", "9000.00", at=now.replace(day=1, hour=0) - timedelta(hours=1)
    )

    await limits.enforce(session, SETTINGS, user, "deposit", Decimal("5000.00"), now=now)
    with pytest.raises(LimitExceededError) as refused:
        await limits.enforce(session, SETTINGS, user, "deposit", Decimal("6000.00"), now=now)
    details = refused.value.details
    assert details["limit"] == "monthly_deposit"
    assert details["limit_usd"] == "30000.00"
    assert details["used_usd"] == "25000.00"
    assert details["remaining_usd"] == "5000.00"


async def test_transfers_count_what_was_sent_not_what_was_received(
    session: AsyncSession,
) -> None:
    now = mid_month()
    user = await make_user(session, tier=1)
    await add_transaction(session, user, "transfer_in", "5000.00", at=now.replace(hour=8))
    await add_transaction(session, user, "transfer_out", "4000.00", at=now.replace(hour=8))
    await limits.enforce(session, SETTINGS, user, "transfer", Decimal("1000.00"), now=now)
    with pytest.raises(LimitExceededError) as refused:
        await limits.enforce(session, SETTINGS, user, "transfer", Decimal("1000.01"), now=now)
    assert refused.value.details["limit"] == "daily_transfer"
    assert refused.value.details["remaining_usd"] == "1000.00"


async def test_withdrawals_have_their_own_limit(session: AsyncSession) -> None:
    user = await make_user(session, tier=1)
    with pytest.raises(LimitExceededError) as refused:
        await limits.enforce(session, SETTINGS, user, "withdrawal", Decimal("5000.01"))
    assert refused.value.details["limit"] == "daily_withdrawal"
    assert refused.value.details["remaining_usd"] == "5000.00"
    await limits.enforce(session, SETTINGS, user, "withdrawal", Decimal("5000.00"))


async def test_tier_2_moves_ten_times_as_much(session: AsyncSession) -> None:
    user = await make_user(session, tier=2)
    await limits.enforce(session, SETTINGS, user, "deposit", Decimal("100000.00"))
    with pytest.raises(LimitExceededError) as refused:
        await limits.enforce(session, SETTINGS, user, "deposit", Decimal("100000.01"))
    assert refused.value.details["limit_usd"] == "100000.00"
    assert refused.value.details["kyc_tier"] == 2


async def test_status_reports_every_limit_with_its_usage(session: AsyncSession) -> None:
    now = mid_month()
    user = await make_user(session, tier=1)
    await add_transaction(
        session, user, "withdrawal", "1234.565", at=now.replace(hour=1), asset="USDC"
    )
    found = {
        (x.movement, x.period): x for x in await limits.status(session, SETTINGS, user, now=now)
    }
    assert len(found) == 6
    daily = found[("withdrawal", "daily")]
    assert daily.used == Decimal("1234.565")
    assert daily.remaining == Decimal("3765.435")
    # Shown with cents: what is used rounds up, what remains rounds down.
    assert limits.usd_text(daily.used, up=True) == "1234.57"
    assert limits.usd_text(daily.remaining) == "3765.43"
    assert found[("deposit", "monthly")].remaining == Decimal(30_000)
    assert await limits.status(session, SETTINGS, await make_user(session, tier=0)) == []


async def test_remaining_never_goes_below_zero(session: AsyncSession) -> None:
    now = mid_month()
    user = await make_user(session, tier=1)
    # Limits can be lowered after money moved: the user is over, not "minus" something.
    await add_transaction(session, user, "transfer_out", "6000.00", at=now.replace(hour=1))
    with pytest.raises(LimitExceededError) as refused:
        await limits.enforce(session, SETTINGS, user, "transfer", Decimal("0.01"), now=now)
    assert refused.value.details["remaining_usd"] == "0.00"
    assert refused.value.details["used_usd"] == "6000.00"


async def test_a_refusal_is_recorded_in_its_own_transaction(
    session: AsyncSession, sessions: SessionFactory
) -> None:
    user = await make_user(session, tier=1)
    with pytest.raises(LimitExceededError) as refused:
        await limits.enforce(session, SETTINGS, user, "transfer", Decimal("5000.01"))
    context = AuditContext(actor_id=user.id, actor_role=user.role, ip="203.0.113.9")
    await limits.record_refusal(
        sessions,
        context,
        user=user,
        movement="transfer",
        amount_usd=Decimal("5000.01"),
        error=refused.value,
    )
    async with sessions() as reader:
        rows = await audit.entries(reader, actor_id=user.id, action="limits.refused")
    assert len(rows) == 1
    row = rows[0]
    assert row.outcome == "refused" and row.subject_id == str(user.id) and row.ip == "203.0.113.9"
    assert row.details["code"] == "limit_exceeded"
    assert row.details["limit"] == "daily_transfer"
    assert row.details["remaining_usd"] == "5000.00"
    assert row.details["requested_usd"] == "5000.01"
