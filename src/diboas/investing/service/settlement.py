"""Settling a filled venue order against its quote: the ledger, the lots, the records.

The user gets exactly the quote's terms (price-locked); the platform meets the venue's
actual fill. Two entries, in the request's one transaction:

1. the hold is captured — a buy's USD (amount + fee) to the platform's fee accounts and its
   clearing account; a sell's asset to the clearing account;
2. the trade — clearing is emptied towards the platform's external accounts (what went to
   and came from the venue), the user's investing asset (buy) or banking USD (sell) is
   credited, and whatever the venue's fill differed from the locked terms (the price-lock
   residue, in USD or in the asset, gain or loss) goes to the platform's fee accounts.

Per asset every entry sums to zero, so the ledger's own rules check the arithmetic.
"""

from __future__ import annotations

import random
import uuid
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository as transactions
from diboas.banking.repository import NewTransaction, insert_transactions
from diboas.fees.service import FEE_SHARDS
from diboas.identity.repository import User
from diboas.investing import repository
from diboas.investing.repository import Order, TradeQuote
from diboas.investing.service.quotes import USD
from diboas.kit.ids import uuid7
from diboas.ledger import holds
from diboas.ledger import service as ledger
from diboas.ledger.models import Account, AccountKind, Domain, OwnerType
from diboas.orchestration import saga
from diboas.orchestration.saga import SagaState
from diboas.providers.exchange import ExchangeOrder

Postings = list[tuple[Account, Decimal]]


async def _platform(session: AsyncSession, asset: str, kind: AccountKind) -> Account:
    # Every trade touches the platform's fee, clearing and external accounts: each is split
    # into shards (summed on read) so that concurrent trades lock different rows. A trade's
    # clearing account is looked up once, so it empties the same shard it filled.
    shard = random.randrange(FEE_SHARDS)  # noqa: S311 - load spreading, not security
    return await ledger.platform_account(session, asset=asset, kind=kind, shard=shard)


async def _user(session: AsyncSession, user: User, domain: Domain, asset: str) -> Account:
    return await ledger.customer_account(
        session, owner_type=OwnerType.USER, owner_id=user.id, domain=domain, asset=asset
    )


def _add(postings: Postings, account: Account, amount: Decimal) -> None:
    if amount != 0:
        postings.append((account, amount))


async def _capture(
    session: AsyncSession, user: User, quote: TradeQuote, destinations: Postings, kind: str
) -> None:
    """Take the quote's money (or asset) from its hold — or, if the hold is gone (a lost
    answer reconciled after ``diboas maintain`` swept the expired hold), from the user's
    available balance, which the ledger refuses to take below zero."""
    hold = await holds.get_hold(session, quote.hold_id)
    if hold.status is holds.HoldStatus.ACTIVE:
        await holds.capture_hold(session, quote.hold_id, destinations=destinations, kind=kind)
        return
    domain, asset = (
        (Domain.BANKING, USD) if quote.side == "buy" else (Domain.INVESTING, quote.asset)
    )
    source = await _user(session, user, domain, asset)
    total = sum((amount for _, amount in destinations), Decimal(0))
    await ledger.post_entry(
        session,
        kind=kind,
        postings=[(source, -total), *destinations],
        reference=f"quote:{quote.id}",
    )


async def _settle_buy(
    session: AsyncSession, user: User, quote: TradeQuote, fill: ExchangeOrder, reference: str
) -> None:
    clearing = await _platform(session, USD, AccountKind.CLEARING)
    fees = await _platform(session, USD, AccountKind.FEES)
    owed_to_venue = quote.amount_usd + quote.provider_fee
    destinations: Postings = []
    _add(destinations, fees, quote.platform_fee + quote.network_fee)
    destinations.append((clearing, owed_to_venue))
    await _capture(session, user, quote, destinations, "investing.buy.capture")
    paid = fill.cost + fill.fee
    postings: Postings = [
        (clearing, -owed_to_venue),
        (await _platform(session, USD, AccountKind.EXTERNAL), paid),
    ]
    _add(postings, fees, owed_to_venue - paid)
    postings.append((await _platform(session, quote.asset, AccountKind.EXTERNAL), -fill.quantity))
    postings.append((await _user(session, user, Domain.INVESTING, quote.asset), quote.quantity))
    _add(
        postings,
        await _platform(session, quote.asset, AccountKind.FEES),
        fill.quantity - quote.quantity,
    )
    await ledger.post_entry(session, kind="investing.buy", postings=postings, reference=reference)


async def _settle_sell(
    session: AsyncSession, user: User, quote: TradeQuote, fill: ExchangeOrder, reference: str
) -> None:
    clearing = await _platform(session, quote.asset, AccountKind.CLEARING)
    await _capture(session, user, quote, [(clearing, quote.quantity)], "investing.sell.capture")
    received = fill.cost - fill.fee
    to_user = quote.amount_usd - quote.total_fee
    postings: Postings = [
        (clearing, -quote.quantity),
        (await _platform(session, quote.asset, AccountKind.EXTERNAL), fill.quantity),
    ]
    _add(
        postings,
        await _platform(session, quote.asset, AccountKind.FEES),
        quote.quantity - fill.quantity,
    )
    postings.append((await _platform(session, USD, AccountKind.EXTERNAL), -received))
    postings.append((await _user(session, user, Domain.BANKING, USD), to_user))
    # The platform's fee and the price-lock residue, together: what is left of the proceeds.
    _add(postings, await _platform(session, USD, AccountKind.FEES), received - to_user)
    await ledger.post_entry(session, kind="investing.sell", postings=postings, reference=reference)


async def _consume_lots(
    session: AsyncSession, user: User, quote: TradeQuote, order_id: uuid.UUID
) -> None:
    """FIFO: the oldest lots first; proceeds (net of the fee) shared by quantity, the last
    share taking what is left so the cents add up."""
    left = quote.quantity
    proceeds_left = quote.amount_usd - quote.total_fee
    lots = await repository.open_lots(session, user.id, quote.asset, lock=True)
    for lot in lots:
        if left <= 0:
            break
        take = min(lot.remaining, left)
        left -= take
        cost = (
            lot.remaining_cost
            if take == lot.remaining
            else _cents(lot.cost_usd * take / lot.quantity)
        )
        proceeds = (
            proceeds_left
            if left == 0
            else _cents((quote.amount_usd - quote.total_fee) * take / quote.quantity)
        )
        proceeds_left -= proceeds
        await repository.consume_lot(
            session,
            lot,
            order_id=order_id,
            user_id=user.id,
            quantity=take,
            cost_basis=cost,
            proceeds=proceeds,
        )


async def _complete_funded(
    session: AsyncSession,
    quote: TradeQuote,
    venue: str,
    description: str,
    details: dict[str, Any],
) -> None:
    assert quote.transaction_id is not None  # noqa: S101 - checked by the caller
    transaction = await transactions.get_transaction(session, quote.transaction_id, lock=True)
    if transaction is None:  # pragma: no cover - written before its quote
        raise LookupError(f"transaction {quote.transaction_id} vanished")
    await repository.record_fill(
        session,
        transaction.id,
        transaction.created_at,
        fee=quote.total_fee,
        provider=venue,
        description=description,
        metadata=details,
    )
    await transactions.set_status(session, transaction, "completed", provider=venue)
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        transaction.saga_state,
        SagaState.SETTLED,
        order_id=details["order_id"],
        quantity=details["quantity"],
        price=details["price"],
        venue=venue,
    )


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


async def settle(
    session: AsyncSession, user: User, quote: TradeQuote, fill: ExchangeOrder
) -> Order:
    """Post the trade, record order, lots and transaction, and close the quote. A quote made
    for a deposit-then-buy completes that transaction (and its saga) instead of writing one."""
    transaction_id = quote.transaction_id or uuid7()
    order_id = uuid7()
    reference = f"txn:{transaction_id}"
    if quote.side == "buy":
        await _settle_buy(session, user, quote, fill, reference)
    else:
        await _settle_sell(session, user, quote, fill, reference)
    await repository.insert_order(
        session,
        {
            "id": order_id,
            "user_id": user.id,
            "quote_id": quote.id,
            "transaction_id": transaction_id,
            "side": quote.side,
            "asset": quote.asset,
            "quantity": quote.quantity,
            "price": quote.price,
            "amount_usd": quote.amount_usd,
            "fee_usd": quote.total_fee,
            "venue": fill.exchange,
            "venue_order_id": fill.order_id,
            "client_order_id": fill.client_order_id,
            "venue_quantity": fill.quantity,
            "venue_cost": fill.cost,
            "venue_fee": fill.fee,
        },
    )
    if quote.side == "buy":
        await repository.open_lot(
            session,
            user_id=user.id,
            asset=quote.asset,
            order_id=order_id,
            quantity=quote.quantity,
            cost_usd=quote.amount_usd + quote.total_fee,
        )
    else:
        await _consume_lots(session, user, quote, order_id)
    details = {
        "fee": {
            "platform": str(quote.platform_fee),
            "provider": str(quote.provider_fee),
            "network": str(quote.network_fee),
            "provider_name": fill.exchange,
        },
        "order_id": str(order_id),
        "asset": quote.asset,
        "quantity": str(quote.quantity),
        "price": str(quote.price),
    }
    description = f"{quote.side} {quote.quantity.normalize():f} {quote.asset}"
    if quote.transaction_id is not None:
        await _complete_funded(session, quote, fill.exchange, description, details)
    else:
        await insert_transactions(
            session,
            [
                NewTransaction(
                    id=transaction_id,
                    user_id=user.id,
                    type=quote.side,
                    status="completed",
                    domain="investing",
                    asset=USD,
                    amount=quote.amount_usd,
                    fee=quote.total_fee,
                    provider=fill.exchange,
                    hold_id=quote.hold_id,
                    quote_id=quote.id,
                    description=description,
                    metadata=details,
                )
            ],
        )
    await repository.close_quote(session, quote.id, "executed", transaction_id)
    order = await repository.get_order(session, order_id, user_id=user.id)
    assert order is not None  # noqa: S101 - inserted just above
    return order
