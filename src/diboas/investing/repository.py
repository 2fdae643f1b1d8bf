"""Investing's SQL: trade quotes, orders, FIFO lots and disposals."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class TradeQuote:
    """A stored trade quote (``expired`` is computed against the database clock)."""

    id: uuid.UUID
    user_id: uuid.UUID
    side: str
    asset: str
    requested: str
    quantity: Decimal
    amount_usd: Decimal
    price: Decimal
    platform_fee: Decimal
    provider_fee: Decimal
    network_fee: Decimal
    total_fee: Decimal
    venue: str
    route: dict[str, Any]
    hold_id: uuid.UUID
    status: str
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    transaction_id: uuid.UUID | None
    expired: bool


@dataclass(frozen=True, slots=True)
class Order:
    """A filled order."""

    id: uuid.UUID
    user_id: uuid.UUID
    quote_id: uuid.UUID
    transaction_id: uuid.UUID
    side: str
    asset: str
    quantity: Decimal
    price: Decimal
    amount_usd: Decimal
    fee_usd: Decimal
    venue: str
    venue_order_id: str
    client_order_id: str
    venue_quantity: Decimal
    venue_cost: Decimal
    venue_fee: Decimal
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Lot:
    """A FIFO lot: what one buy added, and what is left of it."""

    id: int
    asset: str
    quantity: Decimal
    remaining: Decimal
    cost_usd: Decimal
    remaining_cost: Decimal
    acquired_at: datetime


def _quote(row: RowMapping) -> TradeQuote:
    values = dict(row)
    if isinstance(values["route"], str):
        values["route"] = json.loads(values["route"])
    return TradeQuote(**values)


_QUOTE_COLUMNS = "q.*, q.expires_at <= now() AS expired"


async def insert_quote(session: AsyncSession, values: dict[str, Any]) -> TradeQuote:
    """Store a quote (its expiry is also its hold's; ``transaction_id`` set beforehand only
    for a deposit-then-buy, whose transaction exists before its quote)."""
    row = (
        (
            await session.execute(
                text(f"""
                    INSERT INTO investing_quotes AS q (id, user_id, side, asset, requested, quantity,
                        amount_usd, price, platform_fee, provider_fee, network_fee, total_fee,
                        venue, route, hold_id, expires_at, transaction_id)
                    VALUES (:id, :user_id, :side, :asset, :requested, :quantity, :amount_usd, :price,
                        :platform_fee, :provider_fee, :network_fee, :total_fee, :venue,
                        CAST(:route AS jsonb), :hold_id, :expires_at, :transaction_id)
                    RETURNING {_QUOTE_COLUMNS}
                """),
                {**values, "route": json.dumps(values["route"])},
            )
        )
        .mappings()
        .one()
    )
    return _quote(row)


async def get_quote(
    session: AsyncSession, quote_id: uuid.UUID, *, user_id: uuid.UUID, lock: bool = False
) -> TradeQuote | None:
    """The user's quote (None for another user's: it is 404 to them)."""
    sql = (
        f"SELECT {_QUOTE_COLUMNS} FROM investing_quotes q WHERE q.id = :id AND q.user_id = :user_id"
    )
    if lock:
        sql += " FOR UPDATE"
    row = (
        (await session.execute(text(sql), {"id": quote_id, "user_id": user_id}))
        .mappings()
        .one_or_none()
    )
    return None if row is None else _quote(row)


async def close_quote(
    session: AsyncSession, quote_id: uuid.UUID, status: str, transaction_id: uuid.UUID | None
) -> None:
    """Mark a quote executed, expired or failed (a transaction it was made for stays)."""
    await session.execute(
        text("""UPDATE investing_quotes SET status = :status, closed_at = now(),
                       transaction_id = coalesce(:transaction_id, transaction_id)
                 WHERE id = :id"""),
        {"id": quote_id, "status": status, "transaction_id": transaction_id},
    )


async def insert_order(session: AsyncSession, values: dict[str, Any]) -> None:
    """Store a filled order."""
    await session.execute(
        text("""
            INSERT INTO investing_orders (id, user_id, quote_id, transaction_id, side, asset,
                quantity, price, amount_usd, fee_usd, venue, venue_order_id, client_order_id,
                venue_quantity, venue_cost, venue_fee)
            VALUES (:id, :user_id, :quote_id, :transaction_id, :side, :asset, :quantity, :price,
                :amount_usd, :fee_usd, :venue, :venue_order_id, :client_order_id,
                :venue_quantity, :venue_cost, :venue_fee)
        """),
        values,
    )


async def get_order(
    session: AsyncSession, order_id: uuid.UUID, *, user_id: uuid.UUID
) -> Order | None:
    """The user's order (None for another user's)."""
    row = (
        (
            await session.execute(
                text("SELECT * FROM investing_orders WHERE id = :id AND user_id = :user_id"),
                {"id": order_id, "user_id": user_id},
            )
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else Order(**row)


async def open_lot(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    asset: str,
    order_id: uuid.UUID,
    quantity: Decimal,
    cost_usd: Decimal,
) -> None:
    """Add the lot a buy opened."""
    await session.execute(
        text("""
            INSERT INTO investing_lots (user_id, asset, order_id, quantity, remaining, cost_usd,
                                        remaining_cost, acquired_at)
            VALUES (:user_id, :asset, :order_id, :quantity, :quantity, :cost, :cost, now())
        """),
        {
            "user_id": user_id,
            "asset": asset,
            "order_id": order_id,
            "quantity": quantity,
            "cost": cost_usd,
        },
    )


async def open_lots(
    session: AsyncSession, user_id: uuid.UUID, asset: str | None = None, *, lock: bool = False
) -> list[Lot]:
    """The user's lots with something left, oldest first (of one asset when given)."""
    sql = """SELECT id, asset, quantity, remaining, cost_usd, remaining_cost, acquired_at
               FROM investing_lots
              WHERE user_id = :user_id AND remaining > 0
                AND (CAST(:asset AS text) IS NULL OR asset = :asset)
              ORDER BY id"""
    if lock:
        sql += " FOR UPDATE"
    rows = await session.execute(text(sql), {"user_id": user_id, "asset": asset})
    return [Lot(**row) for row in rows.mappings()]


async def consume_lot(
    session: AsyncSession,
    lot: Lot,
    *,
    order_id: uuid.UUID,
    user_id: uuid.UUID,
    quantity: Decimal,
    cost_basis: Decimal,
    proceeds: Decimal,
) -> None:
    """Take ``quantity`` (and ``cost_basis`` of its cost) from a lot, recording the disposal."""
    await session.execute(
        text("""UPDATE investing_lots SET remaining = remaining - :q,
                       remaining_cost = remaining_cost - :c WHERE id = :id"""),
        {"id": lot.id, "q": quantity, "c": cost_basis},
    )
    await session.execute(
        text("""
            INSERT INTO investing_disposals (lot_id, order_id, user_id, asset, quantity,
                                             cost_basis, proceeds)
            VALUES (:lot_id, :order_id, :user_id, :asset, :quantity, :cost_basis, :proceeds)
        """),
        {
            "lot_id": lot.id,
            "order_id": order_id,
            "user_id": user_id,
            "asset": lot.asset,
            "quantity": quantity,
            "cost_basis": cost_basis,
            "proceeds": proceeds,
        },
    )


async def realised(session: AsyncSession, user_id: uuid.UUID) -> dict[str, Decimal]:
    """Realised profit and loss per asset: proceeds less cost basis of every disposal."""
    rows = await session.execute(
        text("""SELECT asset, sum(proceeds - cost_basis) AS pnl FROM investing_disposals
                 WHERE user_id = :user_id GROUP BY asset"""),
        {"user_id": user_id},
    )
    return {row.asset: Decimal(row.pnl) for row in rows}


async def holdings(session: AsyncSession, user_id: uuid.UUID) -> dict[str, tuple[Decimal, int]]:
    """The user's investing balances per asset from the ledger (available + held), with scale."""
    rows = await session.execute(
        text("""SELECT a.asset, s.scale, sum(b.balance) AS quantity
                  FROM accounts a JOIN balances b ON b.account_id = a.id
                  JOIN assets s ON s.code = a.asset
                 WHERE a.owner_type = 'user' AND a.owner_id = :user_id AND a.domain = 'investing'
                   AND a.kind IN ('available', 'held')
                 GROUP BY a.asset, s.scale"""),
        {"user_id": user_id},
    )
    return {row.asset: (Decimal(row.quantity), int(row.scale)) for row in rows}


async def holdings_scale(session: AsyncSession, asset: str) -> int | None:
    """An asset's scale (None for an unknown asset)."""
    value = (
        await session.execute(text("SELECT scale FROM assets WHERE code = :code"), {"code": asset})
    ).scalar()
    return None if value is None else int(value)


async def attach_quote(
    session: AsyncSession,
    transaction_id: uuid.UUID,
    created_at: datetime,
    *,
    quote_id: uuid.UUID | None,
    hold_id: uuid.UUID | None,
) -> None:
    """Point a deposit-then-buy transaction at the quote (and hold) now buying for it."""
    await session.execute(
        text("""UPDATE transactions SET quote_id = :quote_id, hold_id = :hold_id, updated_at = now()
                 WHERE id = :id AND created_at = :created_at"""),
        {"id": transaction_id, "created_at": created_at, "quote_id": quote_id, "hold_id": hold_id},
    )


async def record_fill(
    session: AsyncSession,
    transaction_id: uuid.UUID,
    created_at: datetime,
    *,
    fee: Decimal,
    provider: str,
    description: str,
    metadata: dict[str, Any],
) -> None:
    """A deposit-then-buy transaction's figures once its buy has filled: the fee charged
    (never above the one accepted), the venue, and the order's details (merged in)."""
    await session.execute(
        text("""UPDATE transactions
                   SET fee = :fee, provider = :provider, description = :description,
                       metadata = metadata || CAST(:metadata AS jsonb), updated_at = now()
                 WHERE id = :id AND created_at = :created_at"""),
        {
            "id": transaction_id,
            "created_at": created_at,
            "fee": fee,
            "provider": provider,
            "description": description,
            "metadata": json.dumps(metadata),
        },
    )
