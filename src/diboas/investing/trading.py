"""Quoting and trading as whole steps — the exchange asked outside any transaction, the
ledger changed inside one — shared by the API and the web app; and deposit-then-buy: priced
outside any transaction, shown before it is asked for (``funded_terms``), accepted in one
(``accept_funded``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.api.deps import Database
from diboas.banking.service.common import own_bank_account
from diboas.compliance.audit import AuditContext
from diboas.defi.service.funding import gross_up
from diboas.identity.repository import User
from diboas.investing import repository, schemas
from diboas.investing.service import execution, funded, quotes, venues_for
from diboas.investing.service.quotes import LOT, PricedTrade
from diboas.investing.views import funded_out, order_out, quote_out, scale_of
from diboas.kit.errors import DomainError


async def quote(
    db: Database, services: dict[str, Any], user: User, body: schemas.TradeIn
) -> schemas.QuoteOut:
    """Price a trade on the cheapest venue, lock the price and hold the money."""
    venues = venues_for(services, db.settings)
    trade = quotes.parse_trade(
        venues, side=body.side, asset=body.asset, amount_usd=body.amount_usd, quantity=body.quantity
    )
    priced = await quotes.price_trade(venues, trade, max_age=quotes.max_data_age(db.settings))

    async def lock(session: AsyncSession) -> schemas.QuoteOut:
        locked = await quotes.lock_quote(session, db.settings, user=user, priced=priced)
        return quote_out(locked, await scale_of(session, locked.asset))

    return await db.run(lock)


async def trade_quote(
    db: Database, services: dict[str, Any], user: User, quote_id: uuid.UUID
) -> schemas.OrderOut:
    """Execute a locked quote (once: a quote trades at most once); a refusal releases it."""
    venues = venues_for(services, db.settings)

    async def execute(session: AsyncSession) -> schemas.OrderOut:
        order = await execution.execute(session, venues, user=user, quote_id=quote_id)
        locked = await repository.get_quote(session, quote_id, user_id=user.id)
        assert locked is not None  # noqa: S101 - just executed
        return order_out(order, locked, await scale_of(session, order.asset))

    try:
        return await db.run(execute)
    except DomainError as refusal:
        # The hold goes back (or, if the venue's answer was lost, the quote is reconciled).
        release = partial(_after_failure, db=db, user=user, quote_id=quote_id, error=refusal)
        await db.run(release)
        raise


async def _after_failure(
    session: AsyncSession, *, db: Database, user: User, quote_id: uuid.UUID, error: DomainError
) -> None:
    await execution.after_failure(
        session,
        user_id=user.id,
        quote_id=quote_id,
        error=error,
        reconcile_after=timedelta(seconds=db.settings.investing_reconcile_delay_seconds),
    )


@dataclass(frozen=True, slots=True)
class FundedTerms:
    """What a deposit-then-buy would do if asked now: the deposit (grossed up for its own
    fee), the purchase, its fee, the price now and the highest price it may be bought at."""

    asset: str
    amount_usd: Decimal
    fee: Decimal
    deposit_amount: Decimal
    reference_price: Decimal
    max_price: Decimal
    estimated_quantity: Decimal
    method: str


async def price_order(db: Database, services: dict[str, Any], body: schemas.OrderIn) -> PricedTrade:
    """Price an order on the venues (outside any transaction: the exchange is never asked
    while a connection is held)."""
    venues = venues_for(services, db.settings)
    trade = quotes.parse_trade(
        venues, side=body.side, asset=body.asset, amount_usd=body.amount_usd, quantity=body.quantity
    )
    return await quotes.price_trade(venues, trade, max_age=quotes.max_data_age(db.settings))


def slippage_of(db: Database, body: schemas.OrderIn) -> int:
    """The order's price bound in basis points (the setting's unless it names its own)."""
    chosen = body.max_slippage_bps
    return db.settings.investing_funded_max_slippage_bps if chosen is None else chosen


async def funded_terms(
    db: Database, user: User, body: schemas.OrderIn, priced: PricedTrade
) -> FundedTerms:
    """The terms a deposit-then-buy priced as ``priced`` would be accepted on (nothing is
    written: the review a person reads before confirming)."""
    assert body.funding is not None  # noqa: S101 - a funded order's terms
    method = body.funding.method

    async def read(session: AsyncSession) -> tuple[Decimal, Decimal]:
        source = body.funding.bank_account_id if body.funding is not None else None
        if source is not None:  # the account to debit must be the caller's (else 404 now)
            await own_bank_account(session, db.settings, source, user.id)
        fee = await quotes.trade_fee(session, user, priced)
        return fee.total, await gross_up(session, user, priced.amount_usd + fee.total, method)

    fee, deposit = await db.run(read)
    reference = (priced.amount_usd / priced.quantity).quantize(LOT)
    return FundedTerms(
        asset=priced.request.asset,
        amount_usd=priced.amount_usd,
        fee=fee,
        deposit_amount=deposit,
        reference_price=reference,
        max_price=funded.max_price(reference, slippage_of(db, body)),
        estimated_quantity=priced.quantity,
        method=method,
    )


async def accept_funded(
    session: AsyncSession,
    db: Database,
    user: User,
    body: schemas.OrderIn,
    priced: PricedTrade,
    context: AuditContext,
) -> schemas.FundedOrderOut:
    """Accept a deposit-then-buy priced as ``priced`` in ``session``'s transaction: the
    deposit, the pending buy, its saga and the job that buys once the deposit settles."""
    assert body.funding is not None  # noqa: S101 - the caller checked
    accepted = await funded.accept(
        session,
        db.settings,
        user_id=user.id,
        priced=priced,
        funding=body.funding,
        slippage_bps=slippage_of(db, body),
        context=context,
    )
    return funded_out(accepted)
