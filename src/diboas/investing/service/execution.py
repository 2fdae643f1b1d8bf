"""Executing a quote on its venue, and what happens when the venue fails.

The quote row is locked for the whole execution, so two requests presenting the same quote
cannot both trade it. The venue order carries a client order id derived from the quote id:
a retry (ours, or the database transaction's after a serialization failure) is the same
order to the venue, and a duplicate is answered with the order already placed.

A definite refusal (insufficient liquidity, order rejected, bad credentials) releases the
hold and closes the quote as failed. An ambiguous failure (timeout, 5xx after the retries)
may have filled at the venue: the quote keeps its hold and ``investing.reconcile_quote`` asks
the venue later, settling the order it finds or releasing the hold if there is none.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.fees.service import QuoteExpiredError
from diboas.identity import repository as users
from diboas.identity.repository import User
from diboas.investing import repository
from diboas.investing.repository import Order, TradeQuote
from diboas.investing.service.settlement import settle
from diboas.kit.errors import ConflictError, DomainError, NotFoundError
from diboas.ledger import holds
from diboas.orchestration.jobs import stage
from diboas.providers.exchange import (
    Exchange,
    ExchangeError,
    ExchangeOrder,
    OrderNotFoundError,
    OrderRejectedError,
    Side,
)
from diboas.providers.exchange_routing import venue
from diboas.providers.resilience import Failover, ProviderError, call

log = structlog.get_logger(__name__)

RECONCILE_JOB = "investing.reconcile_quote"


class QuoteNotFoundError(NotFoundError):
    """No such quote for this user (another user's quote is not found either)."""

    code = "quote_not_found"


class QuoteUsedError(ConflictError):
    """The quote was executed already, or has failed."""

    code = "quote_used"


class TradeRefusedError(DomainError):
    """The venue refused the order for good; nothing was traded and the hold is released."""

    status_code = 422
    code = "order_rejected"

    @classmethod
    def of(cls, error: ProviderError) -> TradeRefusedError:
        kind = LiquidityRefusedError if error.code == "insufficient_liquidity" else cls
        return kind(
            f"the exchange refused the order ({error.code})",
            details={"provider": error.provider, "reason": error.code},
        )


class LiquidityRefusedError(TradeRefusedError):
    """The venue's book cannot fill the order."""

    code = "insufficient_liquidity"


class TradePendingError(DomainError):
    """The venue did not answer; the outcome is being checked and the money stays held."""

    status_code = 503
    code = "exchange_unavailable"


def client_order_id(quote_id: uuid.UUID) -> str:
    """The venue-side id of a quote's order (Binance allows 36 of [A-Za-z0-9_-])."""
    return "dbs" + quote_id.hex


async def open_quote(session: AsyncSession, user: User, quote_id: uuid.UUID) -> TradeQuote:
    """The user's quote, locked, if it can still be executed."""
    quote = await repository.get_quote(session, quote_id, user_id=user.id, lock=True)
    if quote is None:
        raise QuoteNotFoundError("no such quote", details={"quote_id": str(quote_id)})
    if quote.status != "open":
        raise QuoteUsedError(
            f"the quote is {quote.status}",
            details={"quote_id": str(quote_id), "status": quote.status},
        )
    if quote.expired:
        raise QuoteExpiredError(
            "the quote has expired; ask for a new one", details={"quote_id": str(quote_id)}
        )
    return quote


async def _place(venues: Failover[Exchange], quote: TradeQuote) -> ExchangeOrder:
    slot = venue(venues, quote.venue)
    client_id = client_order_id(quote.id)

    venue_ = slot.implementation
    # Placed by the quoted quantity; a venue that buys only by amount spends the quoted
    # amount, and what its fill differs from the quantity is the platform's (settlement).
    by_amount = quote.side == "buy" and not venue_.market_buy_by_quantity

    async def once() -> ExchangeOrder:
        try:
            return await venue_.market_order(
                quote.asset,
                Side(quote.side),
                client_order_id=client_id,
                quantity=None if by_amount else quote.quantity,
                quote_amount=quote.amount_usd if by_amount else None,
            )
        except OrderRejectedError as exc:
            if "duplicate" not in str(exc).lower():
                raise
            return await venue_.fetch_order(quote.asset, client_id)

    return await call(slot.name, once, policy=venues.policy, breaker=slot.breaker)


async def execute(
    session: AsyncSession, venues: Failover[Exchange], *, user: User, quote_id: uuid.UUID
) -> Order:
    """Trade an open quote on its venue and settle it, all in this transaction."""
    quote = await open_quote(session, user, quote_id)
    try:
        fill = await _place(venues, quote)
    except ExchangeError as exc:
        if exc.retryable:
            raise TradePendingError(
                "the exchange did not answer; your order is being checked",
                details={"quote_id": str(quote.id), "provider": exc.provider},
            ) from exc
        raise TradeRefusedError.of(exc) from exc
    except ProviderError as exc:  # timeouts and an open breaker: ambiguous or not attempted
        raise TradePendingError(
            "the exchange did not answer; your order is being checked",
            details={"quote_id": str(quote.id), "provider": exc.provider},
        ) from exc
    return await settle(session, user, quote, fill)


async def after_failure(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    quote_id: uuid.UUID,
    error: DomainError,
    reconcile_after: timedelta = timedelta(seconds=30),
) -> None:
    """In a transaction of its own, after ``execute`` failed: release a refused or expired
    quote's hold at once, or have an ambiguous one checked later."""
    quote = await repository.get_quote(session, quote_id, user_id=user_id, lock=True)
    if quote is None or quote.status != "open":
        return
    if isinstance(error, TradePendingError):
        await stage(
            session,
            RECONCILE_JOB,
            {"quote_id": str(quote_id), "user_id": str(user_id)},
            delay=reconcile_after,
            dedupe_key=f"reconcile:{quote_id}",
        )
        return
    if isinstance(error, TradeRefusedError | QuoteExpiredError):
        status = "failed" if isinstance(error, TradeRefusedError) else "expired"
        await _release(session, quote)
        await repository.close_quote(session, quote.id, status, None)


async def _release(session: AsyncSession, quote: TradeQuote) -> None:
    # The hold may have expired already (``diboas maintain`` sweeps holds past their time).
    hold = await holds.get_hold(session, quote.hold_id)
    if hold.status is holds.HoldStatus.ACTIVE:
        await holds.release_hold(session, quote.hold_id)


async def reconcile(
    session: AsyncSession, venues: Failover[Exchange], *, user_id: uuid.UUID, quote_id: uuid.UUID
) -> str:
    """Settle what the venue did with an ambiguous quote's order; returns what happened."""
    quote = await repository.get_quote(session, quote_id, user_id=user_id, lock=True)
    if quote is None or quote.status != "open":
        return "nothing to do"
    user = await users.get(session, user_id)
    if user is None:
        return "no such user"
    slot = venue(venues, quote.venue)
    try:
        fill = await call(
            slot.name,
            lambda: slot.implementation.fetch_order(quote.asset, client_order_id(quote.id)),
            policy=venues.policy,
            breaker=slot.breaker,
        )
    except OrderNotFoundError:
        await _release(session, quote)
        await repository.close_quote(session, quote.id, "failed", None)
        return "released"
    await settle(session, user, quote, fill)
    log.info("ambiguous trade settled", quote_id=str(quote_id), venue=quote.venue)
    return "settled"
