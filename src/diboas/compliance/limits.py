"""KYC tiers and their movement limits.

Tier 0 moves no money. Tier 1 has daily and monthly limits per kind of movement; tier 2 has
ten times tier 1 (all figures are settings). Usage is what the user's transactions of that
kind add up to in the current UTC day and month, counting everything not failed or reversed.
Callers hold the user's row lock (``identity.repository.get(lock=True)``) so that two
concurrent movements cannot both pass the check. A refusal rolls the caller's transaction
back; the caller then records it with ``record_refusal`` (its own transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.db.engine import SessionFactory
from diboas.identity.repository import User
from diboas.kit.errors import DomainError
from diboas.kit.money import format_amount, round_in_platform_favour
from diboas.settings import Settings

Movement = Literal["deposit", "withdrawal", "transfer"]
Period = Literal["daily", "monthly"]
_PERIODS: tuple[Period, ...] = ("daily", "monthly")
MOVEMENTS: tuple[Movement, ...] = ("deposit", "withdrawal", "transfer")
_USD_SCALE = 2

# Which transaction types count against each limit.
_TYPES: dict[Movement, tuple[str, ...]] = {
    "deposit": ("deposit",),
    "withdrawal": ("withdrawal",),
    "transfer": ("transfer_out",),
}


class KycRequiredError(DomainError):
    """The user has not passed KYC (tier 0)."""

    status_code = 403
    code = "kyc_required"


class EmailVerificationRequiredError(DomainError):
    """Money moves only once the email address is verified (when the platform requires it)."""

    status_code = 403
    code = "email_verification_required"


class LimitExceededError(DomainError):
    """The movement would pass a daily or monthly limit."""

    status_code = 422
    code = "limit_exceeded"


# What ``enforce`` raises: the refusals ``record_refusal`` audits.
REFUSALS: tuple[type[DomainError], ...] = (
    EmailVerificationRequiredError,
    KycRequiredError,
    LimitExceededError,
)


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit and how much of it is used."""

    movement: Movement
    period: Period
    limit: Decimal
    used: Decimal

    @property
    def remaining(self) -> Decimal:
        """What may still move in this period (never below zero)."""
        return max(self.limit - self.used, Decimal(0))


def usd_text(amount: Decimal, *, up: bool = False) -> str:
    """A USD figure as a decimal string with cents.

    Usage may hold USDC's sixth decimals: what is used or asked rounds up and what remains
    rounds down, so the figures shown never promise more room than there is.
    """
    return format_amount(round_in_platform_favour(amount, _USD_SCALE, charge=up), _USD_SCALE)


def limits_for(settings: Settings, tier: int) -> dict[Movement, dict[str, Decimal]]:
    """The daily and monthly limits (USD) of a tier; empty for tier 0."""
    if tier <= 0:
        return {}
    factor = Decimal(settings.tier2_multiple if tier >= 2 else 1)
    daily: dict[Movement, Decimal] = {
        "deposit": settings.tier1_daily_deposit_usd,
        "withdrawal": settings.tier1_daily_withdrawal_usd,
        "transfer": settings.tier1_daily_transfer_usd,
    }
    return {
        movement: {
            "daily": amount * factor,
            "monthly": amount * factor * settings.tier1_monthly_multiple,
        }
        for movement, amount in daily.items()
    }


async def usage(
    session: AsyncSession, user: User, movement: Movement, *, now: datetime | None = None
) -> dict[str, Decimal]:
    """What the user moved this UTC day and this UTC month (USD)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    row = (
        await session.execute(
            text("""
                SELECT coalesce(sum(amount) FILTER (WHERE created_at >= :day), 0) AS daily,
                       coalesce(sum(amount), 0) AS monthly
                  FROM transactions
                 WHERE user_id = :user_id AND created_at >= :month AND type = ANY(:types)
                   AND status NOT IN ('failed', 'reversed') AND asset IN ('USD', 'USDC')
            """),
            {"user_id": user.id, "day": day, "month": month, "types": list(_TYPES[movement])},
        )
    ).one()
    return {"daily": Decimal(row.daily), "monthly": Decimal(row.monthly)}


async def status(
    session: AsyncSession, settings: Settings, user: User, *, now: datetime | None = None
) -> list[Limit]:
    """Every limit of the user's tier with what is used (for display); empty for tier 0."""
    result: list[Limit] = []
    for movement, periods in limits_for(settings, user.kyc_tier).items():
        used = await usage(session, user, movement, now=now)
        result += [Limit(movement, period, periods[period], used[period]) for period in _PERIODS]
    return result


async def enforce(
    session: AsyncSession,
    settings: Settings,
    user: User,
    movement: Movement,
    amount_usd: Decimal,
    *,
    now: datetime | None = None,
) -> None:
    """Refuse a movement the user's tier, email status or remaining limits do not allow.

    Raises EmailVerificationRequiredError, KycRequiredError or LimitExceededError; the
    latter's details name the limit (``daily_transfer``) and what remains of it, in USD.
    ``now`` (default: the present) says which day and month count.
    """
    if settings.email_verification_required and user.email_verified_at is None:
        raise EmailVerificationRequiredError("verify your email address before moving money")
    tier_limits = limits_for(settings, user.kyc_tier)
    if not tier_limits:
        raise KycRequiredError(
            "complete identity verification (KYC) before moving money",
            details={"kyc_tier": user.kyc_tier},
        )
    used = await usage(session, user, movement, now=now)
    for period in _PERIODS:
        limit = Limit(movement, period, tier_limits[movement][period], used[period])
        if amount_usd > limit.remaining:
            raise LimitExceededError(
                f"this {movement} would exceed your {period} {movement} limit",
                details={
                    "limit": f"{period}_{movement}",
                    "period": period,
                    "movement": movement,
                    "limit_usd": usd_text(limit.limit),
                    "used_usd": usd_text(limit.used, up=True),
                    "remaining_usd": usd_text(limit.remaining),
                    "requested_usd": usd_text(amount_usd, up=True),
                    "kyc_tier": user.kyc_tier,
                },
            )


async def record_refusal(
    sessions: SessionFactory,
    context: AuditContext,
    *,
    user: User,
    movement: Movement,
    amount_usd: Decimal,
    error: DomainError,
) -> None:
    """Audit a refusal by ``enforce`` (``limits.refused``) in a transaction of its own.

    Banking calls it after ``enforce`` raised, once the movement's own transaction has
    rolled back (an audit row written there would roll back with it), then re-raises::

        try:
            result = await db.run(lambda s: move_money(s, ...))  # calls limits.enforce
        except limits.REFUSALS as exc:
            await limits.record_refusal(db.sessions, context, user=user, movement="deposit",
                                        amount_usd=amount, error=exc)
            raise

    The row carries the error's code and details (which limit, what remains).
    """
    await audit.record_separately(
        sessions,
        context,
        "limits.refused",
        outcome="refused",
        subject_type="user",
        subject_id=user.id,
        details={
            "code": error.code,
            "movement": movement,
            "requested_usd": usd_text(amount_usd, up=True),
            **error.details,
        },
    )
