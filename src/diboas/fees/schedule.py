"""The fee schedule as data, and fee-quote requests checked against it.

The schedule is a table (``fee_schedule``); this module reads it for display and decides
what a quote request is for (its currency's scale, its method) before ``service`` prices it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.fees.service import DEFAULT_PROVIDER, Quote, applies, price, store_quote
from diboas.identity.repository import User
from diboas.kit.errors import DomainError
from diboas.kit.money import parse_amount
from diboas.settings import Settings

# The method a movement uses when it names none (DESIGN §4: a deposit is by card unless
# told otherwise; payouts go by ACH). A quote resolves the method the same way, so the
# movement that presents it matches it.
DEFAULT_METHODS: dict[str, str] = {"deposit": "card", "withdrawal": "ach"}


class UnknownCurrencyError(DomainError):
    """A currency or asset code the platform does not know."""

    status_code = 422
    code = "unknown_currency"


class NotQuotableError(DomainError):
    """The fee schedule does not price this operation in this currency or by this method."""

    status_code = 422
    code = "not_quotable"


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One active component of the fee schedule, with its currency's scale."""

    operation: str
    method: str | None
    tier: int | None
    provider: str | None
    component: str
    currency: str
    scale: int
    percent: Decimal
    fixed: Decimal
    minimum: Decimal
    maximum: Decimal | None
    description: str


@dataclass(frozen=True, slots=True)
class IssuedQuote:
    """A quote as issued to a caller, with the scale its amounts are shown at."""

    quote: Quote
    scale: int


_COLUMNS = """f.operation, f.method, f.tier, f.provider, f.component, f.currency, a.scale,
               f.percent, f.fixed, f.minimum, f.maximum, f.description"""

_SCHEDULE = text(f"""
    SELECT {_COLUMNS}
      FROM fee_schedule f JOIN assets a ON a.code = f.currency
     WHERE f.active AND (CAST(:operation AS text) IS NULL OR f.operation = :operation)
     ORDER BY f.id
""")

# The requested currency's scale and the operation's rows, in one round trip: no row at all
# when the currency is unknown, one row of NULLs when the operation has no schedule.
_QUOTE_BASIS = text(f"""
    SELECT r.scale AS requested_scale, {_COLUMNS}
      FROM assets r
      LEFT JOIN (fee_schedule f JOIN assets a ON a.code = f.currency)
        ON f.active AND f.operation = :operation
     WHERE r.code = :currency
     ORDER BY f.id
""")


async def schedule(session: AsyncSession, *, operation: str | None = None) -> list[ScheduleRow]:
    """The active fee schedule (of one operation when given), in the order it was written."""
    rows = await session.execute(_SCHEDULE, {"operation": operation})
    return [ScheduleRow(**row._mapping) for row in rows]


async def quote_basis(
    session: AsyncSession, *, operation: str, currency: str
) -> tuple[int, list[ScheduleRow]]:
    """The scale of the currency a quote names, and the operation's active schedule rows.

    Raises UnknownCurrencyError (422) for a currency or asset the platform does not know.
    """
    rows = (
        (await session.execute(_QUOTE_BASIS, {"operation": operation, "currency": currency}))
        .mappings()
        .all()
    )
    if not rows:
        raise UnknownCurrencyError(
            f"unknown currency {currency}", details={"field": "currency", "currency": currency}
        )
    schedule_rows = [
        ScheduleRow(**{k: v for k, v in row.items() if k != "requested_scale"})
        for row in rows
        if row["operation"] is not None
    ]
    return int(rows[0]["requested_scale"]), schedule_rows


def resolve_method(
    rows: list[ScheduleRow], *, operation: str, currency: str, method: str | None
) -> str | None:
    """The method a quote is for: the one given, or the operation's default.

    Refuses (422) what the schedule cannot price, rather than quoting a fee of zero: an
    operation it has no row for in the currency, a method it does not list for the
    operation, or no method where every row is for a particular method and the operation
    has no default.
    """
    priced = [row for row in rows if row.currency == currency]
    if not priced:
        raise NotQuotableError(
            f"the fee schedule has no {operation} in {currency}",
            details={
                "operation": operation,
                "currency": currency,
                "currencies": sorted({row.currency for row in rows}),
            },
        )
    methods = sorted({row.method for row in priced if row.method is not None})
    if method is None and DEFAULT_METHODS.get(operation) in methods:
        method = DEFAULT_METHODS[operation]
    any_method = any(row.method is None for row in priced)
    if method is None and not any_method:
        raise NotQuotableError(
            f"a {operation} needs a method", details={"field": "method", "methods": methods}
        )
    if method is not None and method not in methods:
        raise NotQuotableError(
            f"the fee schedule has no {operation} by {method!r}",
            details={"field": "method", "methods": methods},
        )
    return method


async def request_quote(
    session: AsyncSession,
    settings: Settings,
    *,
    user: User,
    operation: str,
    amount: str,
    currency: str,
    method: str | None = None,
    route: dict[str, Any] | None = None,
    route_fee: Decimal = Decimal(0),
) -> IssuedQuote:
    """Validate a quote request against the assets and the schedule, then quote it.

    ``amount`` is the request's decimal string, parsed at the currency's scale. ``route`` is
    a provider route chosen beforehand (``provider``, ``reason``), ``route_fee`` its fee.

    Two statements, which need not share a transaction (the session may be in autocommit):
    the operation's schedule is read once, validated and priced from in Python (the rows
    ``compute`` would select), and the quote is inserted.
    """
    scale, rows = await quote_basis(session, operation=operation, currency=currency)
    value = parse_amount(amount, scale)
    method = resolve_method(rows, operation=operation, currency=currency, method=method)
    provider = DEFAULT_PROVIDER if route is None else str(route["provider"])
    tier = user.kyc_tier
    fee = price(
        [
            row
            for row in rows
            if applies(row, currency=currency, method=method, tier=tier, provider=provider)
        ],
        amount=value,
        currency=currency,
        scale=scale,
        provider=provider,
    )
    quote = await store_quote(
        session,
        settings,
        user=user,
        operation=operation,
        amount=value,
        method=method,
        fee=fee,
        route=route,
        route_fee=route_fee,
    )
    return IssuedQuote(quote, scale)
