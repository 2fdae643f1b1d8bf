"""How quotes and orders are shown (the API and the web app show them alike)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking.repository import Transaction
from diboas.investing import repository, schemas
from diboas.investing.repository import Order, TradeQuote
from diboas.kit.money import format_amount


def usd(value: Decimal) -> str:
    """A USD amount as its JSON string (two decimals)."""
    return format_amount(value, 2)


def _route(quote: TradeQuote) -> schemas.RouteOut:
    route = quote.route
    return schemas.RouteOut(
        provider=str(route.get("provider", quote.venue)),
        reason=str(route.get("reason", "")),
        candidates=[
            schemas.RouteCostOut(
                **{
                    k: usd(Decimal(c[k])) for k in ("fee", "spread", "slippage", "network", "total")
                },
                venue=c["venue"],
            )
            for c in route.get("candidates", [])
        ],
        skipped=dict(route.get("skipped", {})),
    )


def _fee(quote: TradeQuote) -> schemas.FeeOut:
    return schemas.FeeOut(
        platform=usd(quote.platform_fee),
        provider=usd(quote.provider_fee),
        network=usd(quote.network_fee),
    )


def _total(quote: TradeQuote) -> Decimal:
    # A buy costs amount + fee; a sale pays amount − fee.
    sign = 1 if quote.side == "buy" else -1
    return quote.amount_usd + sign * quote.total_fee


def quote_out(quote: TradeQuote, scale: int) -> schemas.QuoteOut:
    """A quote as its owner sees it."""
    return schemas.QuoteOut(
        quote_id=quote.id,
        side=quote.side,
        asset=quote.asset,
        quantity=format_amount(quote.quantity, scale),
        price=usd(quote.price),
        amount_usd=usd(quote.amount_usd),
        fee=usd(quote.total_fee),
        fee_breakdown=_fee(quote),
        total_usd=usd(_total(quote)),
        route=_route(quote),
        hold_id=quote.hold_id,
        status="expired" if quote.status == "open" and quote.expired else quote.status,
        expires_at=quote.expires_at,
        transaction_id=quote.transaction_id,
    )


def order_out(order: Order, quote: TradeQuote, scale: int) -> schemas.OrderOut:
    """An executed order; ``id`` is its transaction."""
    return schemas.OrderOut(
        id=order.transaction_id,
        order_id=order.id,
        quote_id=quote.id,
        status="completed",
        side=order.side,
        asset=order.asset,
        quantity=format_amount(order.quantity, scale),
        price=usd(order.price),
        amount_usd=usd(order.amount_usd),
        fee=usd(order.fee_usd),
        fee_breakdown=_fee(quote),
        total_usd=usd(_total(quote)),
        venue=order.venue,
        route=_route(quote),
        created_at=order.created_at,
    )


async def scale_of(session: AsyncSession, asset: str) -> int:
    """The scale an asset's quantities are shown with."""
    return (await repository.holdings_scale(session, asset)) or 8


def funded_out(transaction: Transaction) -> schemas.FundedOrderOut:
    """A deposit-then-buy as accepted (its terms are in the transaction's metadata)."""
    meta = transaction.metadata
    fee = meta["fee"]
    return schemas.FundedOrderOut(
        id=transaction.id,
        status=transaction.status,
        type=transaction.type,
        asset=str(meta["asset"]),
        amount_usd=usd(transaction.amount),
        fee=usd(transaction.fee),
        fee_breakdown=schemas.FeeOut(
            **{part: usd(Decimal(fee[part])) for part in ("platform", "provider", "network")}
        ),
        reference_price=usd(Decimal(meta["reference_price"])),
        max_price=usd(Decimal(meta["max_price"])),
        max_slippage_bps=int(meta["max_slippage_bps"]),
        estimated_quantity=str(meta["estimated_quantity"]),
        funding_transaction_id=meta["funding_transaction_id"],
        deposit_amount=usd(Decimal(meta["funding_amount"])),
        created_at=transaction.created_at,
    )
