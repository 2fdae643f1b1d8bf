"""Quoting and trading as whole steps — the exchange asked outside any transaction, the
ledger changed inside one — shared by the API and the web app."""

from __future__ import annotations

import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.api.deps import Database
from diboas.identity.repository import User
from diboas.investing import repository, schemas
from diboas.investing.service import execution, quotes, venues_for
from diboas.investing.views import order_out, quote_out, scale_of
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
