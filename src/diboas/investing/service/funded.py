"""Deposit-then-buy in one request: a card or ACH deposit pays for a crypto purchase.

Accepted in the request's one transaction: the deposit (a banking deposit like any other —
limits, fee, its own saga — grossed up so that, less its fee, it covers the purchase and the
purchase's fee), and a ``buy`` transaction (domain investing, status pending) whose saga
records the deposit as its first provider request. The trade is priced first, outside the
transaction, so the response states the reference price, the highest price the buy may
happen at (``max_slippage_bps`` above it) and the fee, which is never exceeded.

The job ``investing.fund_buy`` then drives it (staged again every
``DIBOAS_INVESTING_FUNDING_POLL_SECONDS`` while it waits):

- deposit failed: nothing was held or bought; the buy fails (``funding_failed``);
- deposit completed: the trade is re-quoted on the venues (a fresh, price-locked quote with
  its hold on the banking USD the deposit credited) and executed at once; the quote settles
  this very transaction (``completed``, saga ``settled``);
- the buy cannot happen — the price moved above the bound (``price_moved``), the fee rose
  (``fee_increased``), no venue, stale market data, a venue refusal, the money spent in
  between (``funding_spent``): the saga is ``compensated`` and the transaction ``failed``
  with a reason that says where the money is.

Compensation, decided: the deposit is not refunded. It is the customer's money, already in
their banking balance, and refunding a card or an ACH debit costs fees and days and can
itself fail; the customer can buy again or withdraw. Every step that was taken for the
*purchase* — the quote, its hold — is undone; the deposit step stands, and the failed buy
says so. A venue that did not answer (the order may have filled) leaves the saga
``ambiguous`` until ``investing.reconcile_quote`` learns what the venue did: filled →
settled as usual; never placed → compensated like any refusal.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository as transactions
from diboas.banking.repository import NewTransaction, Transaction
from diboas.banking.service import reversals
from diboas.banking.service.common import lock_user
from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.defi.schemas import FundingIn
from diboas.defi.service.funding import request_deposit
from diboas.fees.service import QuoteExpiredError
from diboas.identity import repository as users
from diboas.investing import repository
from diboas.investing.service import execution, quotes
from diboas.investing.service.quotes import LOT, USD, PricedTrade, TradeRequest
from diboas.kit.errors import DomainError, InsufficientFundsError
from diboas.kit.ids import uuid7, uuid7_time
from diboas.orchestration import saga
from diboas.orchestration.jobs import stage
from diboas.orchestration.saga import SagaState
from diboas.providers.exchange import Exchange, Side
from diboas.providers.resilience import Failover
from diboas.settings import Settings

log = structlog.get_logger(__name__)

FUND_BUY_JOB = "investing.fund_buy"
# A quote that expires between being locked and executed (it should not: both happen within
# one job run) is made again this many times before the buy gives up.
REQUOTES = 2
_BPS = Decimal(10_000)


class PriceMovedError(DomainError):
    """The venues' price is above the bound the customer accepted."""

    status_code = 409
    code = "price_moved"


def max_price(reference: Decimal, slippage_bps: int) -> Decimal:
    """The highest price a funded buy may happen at."""
    return (reference * (1 + Decimal(slippage_bps) / _BPS)).quantize(LOT, rounding=ROUND_DOWN)


async def accept(
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    priced: PricedTrade,
    funding: FundingIn,
    slippage_bps: int,
    context: AuditContext,
) -> Transaction:
    """Accept a deposit-then-buy (see the module docstring): the deposit, the pending buy,
    its saga's first steps and the staged job, together."""
    user = await lock_user(session, user_id)
    quotes.ensure_may_trade(settings, user)
    await reversals.ensure_not_frozen(session, user.id, USD)
    fee = await quotes.trade_fee(session, user, priced)
    deposit = await request_deposit(
        session,
        settings,
        user=user,
        needed=priced.amount_usd + fee.total,
        funding=funding,
        context=context,
    )
    reference = (priced.amount_usd / priced.quantity).quantize(LOT)
    transaction_id = uuid7()
    terms = {
        "funded": True,
        "asset": priced.request.asset,
        "funding_transaction_id": str(deposit.id),
        "funding_amount": str(deposit.amount),
        "reference_price": str(reference),
        "max_price": str(max_price(reference, slippage_bps)),
        "max_slippage_bps": slippage_bps,
        "estimated_quantity": str(priced.quantity),
    }
    await transactions.insert_transactions(
        session,
        [
            NewTransaction(
                id=transaction_id,
                user_id=user.id,
                type="buy",
                status="pending",
                domain="investing",
                asset=USD,
                amount=priced.amount_usd,
                fee=fee.total,
                method=funding.method,
                related_transaction_id=deposit.id,
                description=f"buy {priced.request.asset} with a {funding.method} deposit",
                metadata={
                    "fee": {
                        "platform": str(fee.platform),
                        "provider": str(fee.provider),
                        "network": str(fee.network),
                    },
                    **terms,
                },
            )
        ],
    )
    created_at = uuid7_time(transaction_id)
    await saga.advance(session, transaction_id, created_at, None, SagaState.ACCEPTED, **terms)
    await saga.advance(
        session,
        transaction_id,
        created_at,
        SagaState.ACCEPTED.value,
        SagaState.PROVIDER_REQUESTED,
        funding=str(deposit.id),
        deposit=str(deposit.amount),
    )
    await stage(session, FUND_BUY_JOB, {"transaction_id": str(transaction_id)})
    await audit.record(
        session,
        context,
        "investing.funded_buy",
        subject_type="transaction",
        subject_id=transaction_id,
        details={"amount_usd": str(priced.amount_usd), **terms},
    )
    found = await transactions.get_transaction(session, transaction_id)
    assert found is not None  # noqa: S101 - just written
    return found


@dataclass(frozen=True, slots=True)
class _Next:
    """What a look at a funded buy found to do next, outside its transaction."""

    action: str  # "done", "buy" (price and buy), "execute" (an open quote)
    transaction: Transaction | None = None
    quote_id: uuid.UUID | None = None


def _trade(transaction: Transaction) -> TradeRequest:
    return TradeRequest(Side.BUY, str(transaction.metadata["asset"]), transaction.amount, None)


async def _deposit_of(session: AsyncSession, transaction: Transaction) -> Transaction | None:
    funding = transaction.related_transaction_id
    return None if funding is None else await transactions.get_transaction(session, funding)


def _stays(deposit: Transaction | None) -> str:
    if deposit is None or deposit.status != "completed":
        return "no money moved"
    credited = deposit.amount - deposit.fee
    return f"your deposit of {credited} USD stays in your banking balance"


async def compensate(
    session: AsyncSession, transaction: Transaction, code: str, reason: str
) -> None:
    """The purchase did not happen: fail the buy, saying where the money is (the caller
    holds the row lock; the quote and its hold, if any, were undone already)."""
    full = f"not bought: {reason}; {_stays(await _deposit_of(session, transaction))}"
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        transaction.saga_state,
        SagaState.COMPENSATED,
        failure_code=code,
        reason=full,
    )
    await transactions.set_status(
        session, transaction, "failed", failure_code=code, failure_reason=full
    )


async def _poll_later(session: AsyncSession, settings: Settings, transaction: Transaction) -> None:
    delay = timedelta(seconds=settings.investing_funding_poll_seconds)
    await stage(session, FUND_BUY_JOB, {"transaction_id": str(transaction.id)}, delay=delay)


async def _quoted(session: AsyncSession, settings: Settings, transaction: Transaction) -> _Next:
    """A funded buy with a quote attached: execute it, wait for the venue, or give up."""
    assert transaction.quote_id is not None  # noqa: S101 - checked by the caller
    quote = await repository.get_quote(session, transaction.quote_id, user_id=transaction.user_id)
    assert quote is not None  # noqa: S101 - attached in the same transaction as made
    if quote.status == "open" and transaction.saga_state == SagaState.AMBIGUOUS.value:
        await _poll_later(session, settings, transaction)  # the venue is being asked
        return _Next("done")
    if quote.status == "open":  # (an expired one is released, then made again)
        return _Next("execute", transaction, quote.id)
    if quote.status == "failed":  # the venue never placed it (found by reconciliation)
        await compensate(
            session, transaction, "order_not_placed", "the exchange never placed the order"
        )
    elif quote.status == "expired":
        await compensate(session, transaction, "quote_expired", "the quote expired")
    return _Next("done")


async def _funding_failed(
    session: AsyncSession, transaction: Transaction, deposit: Transaction | None
) -> None:
    code = None if deposit is None else deposit.failure_code
    reason = f"deposit failed: {code}; nothing was bought and no money moved"
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        transaction.saga_state,
        SagaState.FAILED,
        failure_code="funding_failed",
        reason=reason,
    )
    await transactions.set_status(
        session, transaction, "failed", failure_code="funding_failed", failure_reason=reason
    )


async def look(session: AsyncSession, settings: Settings, transaction_id: uuid.UUID) -> _Next:
    """One look at a funded buy under its row lock: wait, fail, or say what to do next."""
    transaction = await transactions.get_transaction(session, transaction_id, lock=True)
    if transaction is None or transaction.final:
        return _Next("done")
    if transaction.quote_id is not None:
        return await _quoted(session, settings, transaction)
    deposit = await _deposit_of(session, transaction)
    if deposit is None or deposit.status in ("failed", "reversed"):
        await _funding_failed(session, transaction, deposit)
        return _Next("done")
    if deposit.status != "completed":
        await _poll_later(session, settings, transaction)
        return _Next("done")
    return _Next("buy", transaction)


async def _lock(
    session: AsyncSession, settings: Settings, transaction_id: uuid.UUID, priced: PricedTrade
) -> uuid.UUID | None:
    """Lock a fresh quote for the funded buy (hold on banking USD) and attach it; None when
    the buy was compensated instead (fee risen, money gone) or is no longer waiting."""
    transaction = await transactions.get_transaction(session, transaction_id, lock=True)
    if transaction is None or transaction.final or transaction.quote_id is not None:
        return None
    user = await users.get(session, transaction.user_id)
    assert user is not None  # noqa: S101 - users are never deleted
    try:
        async with session.begin_nested():  # a refusal rolls back only the attempt
            quote = await quotes.lock_quote(
                session,
                settings,
                user=user,
                priced=priced,
                max_fee=transaction.fee,
                transaction_id=transaction.id,
            )
    except InsufficientFundsError:
        await compensate(session, transaction, "funding_spent", "the deposited money was spent")
        return None
    except DomainError as refusal:
        await compensate(session, transaction, refusal.code, str(refusal))
        return None
    await repository.attach_quote(
        session, transaction.id, transaction.created_at, quote_id=quote.id, hold_id=quote.hold_id
    )
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        transaction.saga_state,
        SagaState.PROVIDER_REQUESTED,
        quote_id=str(quote.id),
        price=str(quote.price),
        quantity=str(quote.quantity),
        venue=quote.venue,
    )
    return quote.id


async def _refuse(
    sessions: SessionFactory, transaction_id: uuid.UUID, code: str, reason: str
) -> None:
    async def work(session: AsyncSession) -> None:
        transaction = await transactions.get_transaction(session, transaction_id, lock=True)
        if transaction is not None and not transaction.final:
            await compensate(session, transaction, code, reason)

    await run_in_transaction(sessions, work)


async def _execute(
    sessions: SessionFactory,
    settings: Settings,
    venues: Failover[Exchange],
    transaction: Transaction,
    quote_id: uuid.UUID,
) -> str:
    """Execute the attached quote; on failure undo it (or, ambiguous, have it checked)."""

    async def trade(session: AsyncSession) -> str:
        user = await users.get(session, transaction.user_id)
        assert user is not None  # noqa: S101 - users are never deleted
        await execution.execute(session, venues, user=user, quote_id=quote_id)
        return "bought"

    try:
        return await run_in_transaction(sessions, trade)
    except DomainError as error:
        failure = error

    async def undo(session: AsyncSession) -> str:
        delay = timedelta(seconds=settings.investing_reconcile_delay_seconds)
        await execution.after_failure(
            session,
            user_id=transaction.user_id,
            quote_id=quote_id,
            error=failure,
            reconcile_after=delay,
        )
        locked = await transactions.get_transaction(session, transaction.id, lock=True)
        if locked is None or locked.final:
            return "done"
        if isinstance(failure, execution.TradePendingError):
            await saga.advance(
                session,
                locked.id,
                locked.created_at,
                locked.saga_state,
                SagaState.AMBIGUOUS,
                reason=str(failure),
                quote_id=str(quote_id),
            )
            await _poll_later(session, settings, locked)
            return "ambiguous"
        if isinstance(failure, QuoteExpiredError):
            # Requote: the purchase goes on with a fresh quote (within the same bounds).
            await repository.attach_quote(
                session, locked.id, locked.created_at, quote_id=None, hold_id=None
            )
            return "requote"
        await compensate(session, locked, failure.code, str(failure))
        return "refused"

    return await run_in_transaction(sessions, undo)


async def run(
    sessions: SessionFactory,
    settings: Settings,
    venues: Failover[Exchange],
    transaction_id: uuid.UUID,
) -> str:
    """The job: look, and buy when the deposit has settled; the outcome."""
    for _ in range(REQUOTES + 1):
        found = await run_in_transaction(sessions, lambda s: look(s, settings, transaction_id))
        if found.action == "done" or found.transaction is None:
            return "done"
        transaction = found.transaction
        quote_id = found.quote_id
        if found.action == "buy":
            outcome = await _price_and_lock(sessions, settings, venues, transaction)
            if isinstance(outcome, str):
                return outcome
            quote_id = outcome
        assert quote_id is not None  # noqa: S101 - "execute" carries it, "buy" made it
        outcome_text = await _execute(sessions, settings, venues, transaction, quote_id)
        if outcome_text != "requote":
            return outcome_text
    await _refuse(sessions, transaction_id, "quote_expired", "every quote expired")
    return "refused"


async def _price_and_lock(
    sessions: SessionFactory,
    settings: Settings,
    venues: Failover[Exchange],
    transaction: Transaction,
) -> uuid.UUID | str:
    """Price the buy on the venues now (outside any transaction) and, within the bounds,
    lock its quote; a string says why not."""
    try:
        priced = await quotes.price_trade(
            venues, _trade(transaction), max_age=quotes.max_data_age(settings)
        )
    except DomainError as unavailable:  # no route, stale data, too large for the books
        await _refuse(sessions, transaction.id, unavailable.code, str(unavailable))
        return "refused"
    price = (priced.amount_usd / priced.quantity).quantize(LOT)
    bound = Decimal(str(transaction.metadata["max_price"]))
    if price > bound:
        moved = PriceMovedError(f"the price rose to {price} USD, above the bound of {bound} USD")
        await _refuse(sessions, transaction.id, moved.code, str(moved))
        return "refused"
    locked = await run_in_transaction(
        sessions, lambda s: _lock(s, settings, transaction.id, priced)
    )
    return "done" if locked is None else locked


def describe(transaction: Transaction) -> dict[str, Any]:
    """The terms of a funded buy as the API shows them."""
    meta = transaction.metadata
    keys = ("asset", "reference_price", "max_price", "max_slippage_bps", "estimated_quantity")
    return {key: meta[key] for key in keys} | {
        "funding_transaction_id": meta["funding_transaction_id"],
        "deposit_amount": meta["funding_amount"],
    }
