"""Fees: computed from the fee schedule (a table), quoted with an expiry, charged exactly.

A movement that presents a ``quote_id`` is charged exactly the quoted fee, or refused with
``quote_expired`` (or another quote error); without one, the current schedule applies. Every
fee component is rounded up to the currency's scale (in the platform's favour, by less than
one minor unit) and posted in the same ledger entry as the movement: the platform's part to
a sharded platform fee account, the provider's part to the platform clearing account (owed to
the provider).
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.identity.repository import User
from diboas.kit.errors import ConflictError, DomainError, NotFoundError
from diboas.kit.money import quantum, round_in_platform_favour
from diboas.ledger import service as ledger
from diboas.ledger.models import Account, AccountKind
from diboas.settings import Settings

# The platform fee account is the hottest row of the ledger: split it so that concurrent
# movements lock different rows (DESIGN §2), and sum the shards when reporting revenue.
FEE_SHARDS = 8
DEFAULT_PROVIDER = "sandbox"


class QuoteExpiredError(DomainError):
    """The quote's time is up: ask for a new one."""

    status_code = 422
    code = "quote_expired"


class QuoteMismatchError(DomainError):
    """The quote was for a different movement."""

    status_code = 422
    code = "quote_mismatch"


@dataclass(frozen=True, slots=True)
class FeeBreakdown:
    """A fee by component, in the movement's currency."""

    currency: str
    platform: Decimal
    provider: Decimal
    network: Decimal
    provider_name: str
    quote_id: uuid.UUID | None = None

    @property
    def total(self) -> Decimal:
        return self.platform + self.provider + self.network

    def as_dict(self) -> dict[str, str]:
        return {
            "platform": str(self.platform),
            "provider": str(self.provider),
            "network": str(self.network),
        }


@dataclass(frozen=True, slots=True)
class Quote:
    """A stored fee quote."""

    id: uuid.UUID
    operation: str
    method: str | None
    currency: str
    amount: Decimal
    fee: FeeBreakdown
    expires_at: datetime
    route: dict[str, Any]


async def compute(
    session: AsyncSession,
    *,
    operation: str,
    amount: Decimal,
    currency: str,
    method: str | None = None,
    tier: int | None = None,
    provider: str = DEFAULT_PROVIDER,
) -> FeeBreakdown:
    """The fee the schedule sets for a movement."""
    # One statement: the currency's scale (NULL when unknown) with every matching row.
    rows = (
        await session.execute(
            text("""
                SELECT a.scale, f.component, f.percent, f.fixed, f.minimum, f.maximum
                  FROM (SELECT CAST(:currency AS text) AS code) c
                  LEFT JOIN assets a ON a.code = c.code
                  LEFT JOIN fee_schedule f
                    ON f.active AND f.operation = :operation AND f.currency = c.code
                   AND (f.method IS NULL OR f.method = :method)
                   AND (f.tier IS NULL OR f.tier = :tier)
                   AND (f.provider IS NULL OR f.provider = :provider)
            """),
            {
                "operation": operation,
                "currency": currency,
                "method": method,
                "tier": tier,
                "provider": provider,
            },
        )
    ).all()
    if rows[0].scale is None:
        raise NotFoundError(f"unknown currency {currency}", details={"currency": currency})
    priced = [row for row in rows if row.component is not None]
    return price(
        priced, amount=amount, currency=currency, scale=int(rows[0].scale), provider=provider
    )


def applies(
    row: Any, *, currency: str, method: str | None, tier: int | None, provider: str
) -> bool:
    """Whether a schedule row prices this movement: ``compute``'s SQL filter, in Python."""
    return (
        row.currency == currency
        and (row.method is None or row.method == method)
        and (row.tier is None or row.tier == tier)
        and (row.provider is None or row.provider == provider)
    )


def price(
    rows: Sequence[Any], *, amount: Decimal, currency: str, scale: int, provider: str
) -> FeeBreakdown:
    """The fee the given schedule rows (``component``, ``percent``, ``fixed``, ``minimum``,
    ``maximum``) set for ``amount``, each component rounded up to ``scale``."""
    # Zero at the currency's scale too, so that every component reads "0.00", never "0".
    zero = Decimal(0).quantize(quantum(scale))
    parts = {"platform": zero, "provider": zero, "network": zero}
    for row in rows:
        fee = amount * row.percent / 100 + row.fixed
        fee = max(fee, row.minimum)
        if row.maximum is not None:
            fee = min(fee, row.maximum)
        parts[row.component] += round_in_platform_favour(fee, scale, charge=True)
    return FeeBreakdown(currency, parts["platform"], parts["provider"], parts["network"], provider)


async def create_quote(
    session: AsyncSession,
    settings: Settings,
    *,
    user: User,
    operation: str,
    amount: Decimal,
    currency: str,
    method: str | None = None,
    route: dict[str, Any] | None = None,
    route_fee: Decimal = Decimal(0),
) -> Quote:
    """Quote a movement's fee; the quote holds for ``fee_quote_ttl_seconds``.

    ``route`` is a chosen provider route (``provider``, ``reason``) whose own fee,
    ``route_fee``, is added to the provider component.
    """
    provider = DEFAULT_PROVIDER if route is None else str(route["provider"])
    fee = await compute(
        session,
        operation=operation,
        amount=amount,
        currency=currency,
        method=method,
        tier=user.kyc_tier,
        provider=provider,
    )
    return await store_quote(
        session,
        settings,
        user=user,
        operation=operation,
        amount=amount,
        method=method,
        fee=fee,
        route=route,
        route_fee=route_fee,
    )


_STORE_QUOTE = text("""
    INSERT INTO fee_quotes (id, user_id, operation, method, currency, amount, platform_fee,
                            provider_fee, network_fee, total_fee, provider, route, expires_at)
    VALUES (:id, :user_id, :operation, :method, :currency, :amount, :platform, :provider_fee,
            :network, :total, :provider, CAST(:route AS jsonb), now() + make_interval(secs => :ttl))
    RETURNING expires_at
""")


async def store_quote(
    session: AsyncSession,
    settings: Settings,
    *,
    user: User,
    operation: str,
    amount: Decimal,
    method: str | None,
    fee: FeeBreakdown,
    route: dict[str, Any] | None = None,
    route_fee: Decimal = Decimal(0),
) -> Quote:
    """Store ``fee`` (priced already; ``route_fee`` is added to its provider part) as a quote
    that holds for ``fee_quote_ttl_seconds``: one statement."""
    currency = fee.currency
    if route_fee:
        fee = FeeBreakdown(
            currency, fee.platform, fee.provider + route_fee, fee.network, fee.provider_name
        )
    quote_id = uuid.uuid4()
    route = route or {
        "provider": fee.provider_name,
        "reason": "the only healthy provider for this operation",
    }
    row = (
        await session.execute(
            _STORE_QUOTE,
            {
                "id": quote_id,
                "user_id": user.id,
                "operation": operation,
                "method": method,
                "currency": currency,
                "amount": amount,
                "platform": fee.platform,
                "provider_fee": fee.provider,
                "network": fee.network,
                "total": fee.total,
                "provider": fee.provider_name,
                "route": json.dumps(route),
                "ttl": settings.fee_quote_ttl_seconds,
            },
        )
    ).one()
    return Quote(
        quote_id,
        operation,
        method,
        currency,
        amount,
        FeeBreakdown(
            currency, fee.platform, fee.provider, fee.network, fee.provider_name, quote_id
        ),
        row.expires_at,
        route,
    )


async def fee_for(
    session: AsyncSession,
    *,
    user: User,
    operation: str,
    amount: Decimal,
    currency: str,
    method: str | None = None,
    quote_id: uuid.UUID | None = None,
    transaction_id: uuid.UUID | None = None,
) -> FeeBreakdown:
    """The fee to charge: exactly the quote's when one is presented (and it is used up),
    otherwise the schedule's."""
    if quote_id is None:
        return await compute(
            session,
            operation=operation,
            amount=amount,
            currency=currency,
            method=method,
            tier=user.kyc_tier,
        )
    row = (
        await session.execute(
            text("""SELECT *, expires_at <= now() AS expired FROM fee_quotes
                     WHERE id = :id AND user_id = :user_id FOR UPDATE"""),
            {"id": quote_id, "user_id": user.id},
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError("no such quote", details={"quote_id": str(quote_id)})
    if row.used_at is not None:
        raise ConflictError("this quote has been used", details={"quote_id": str(quote_id)})
    if row.expired:
        raise QuoteExpiredError(
            "the quote has expired; ask for a new one", details={"quote_id": str(quote_id)}
        )
    quoted = (row.operation, row.method, row.currency, Decimal(row.amount))
    if quoted != (operation, method, currency, amount):
        raise QuoteMismatchError(
            "the quote was for a different movement",
            details={
                "quote": {
                    "operation": row.operation,
                    "method": row.method,
                    "currency": row.currency,
                    "amount": str(row.amount),
                }
            },
        )
    await session.execute(
        text("UPDATE fee_quotes SET used_at = now(), used_by_transaction_id = :t WHERE id = :id"),
        {"id": quote_id, "t": transaction_id},
    )
    return FeeBreakdown(
        currency, row.platform_fee, row.provider_fee, row.network_fee, row.provider, quote_id
    )


async def fee_postings(
    session: AsyncSession, payer: Account, fee: FeeBreakdown
) -> list[tuple[Account, Decimal]]:
    """The postings that charge ``fee`` to ``payer`` (to add to the movement's own entry)."""
    if fee.total == 0:
        return []
    postings: list[tuple[Account, Decimal]] = [(payer, -fee.total)]
    platform_share = fee.platform + fee.network
    if platform_share > 0:
        shard = random.randrange(FEE_SHARDS)  # noqa: S311 - load spreading, not security
        revenue = await ledger.platform_account(
            session, asset=fee.currency, kind=AccountKind.FEES, shard=shard
        )
        postings.append((revenue, platform_share))
    if fee.provider > 0:
        payable = await ledger.platform_account(
            session, asset=fee.currency, kind=AccountKind.CLEARING
        )
        postings.append((payable, fee.provider))
    return postings


async def revenue(session: AsyncSession, currency: str) -> Decimal:
    """Fee revenue collected in a currency (every shard of the platform fee account)."""
    value = (
        await session.execute(
            text("""SELECT coalesce(sum(b.balance), 0) FROM balances b JOIN accounts a ON a.id = b.account_id
                     WHERE a.owner_type = 'platform' AND a.kind = 'fees' AND a.asset = :c"""),
            {"c": currency},
        )
    ).scalar_one()
    return Decimal(value)


def quote_expiry(settings: Settings) -> timedelta:
    """How long a quote holds."""
    return timedelta(seconds=settings.fee_quote_ttl_seconds)
