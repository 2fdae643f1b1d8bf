"""DeFi's reporting SQL: the vault share prices seen (the catalog's APY comes from them) and
the figures the reconciliation compares with the vaults."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def record_share_price(session: AsyncSession, strategy_id: str, price: Decimal) -> None:
    """Keep a share price seen now (the APY is derived from these)."""
    await session.execute(
        text("""INSERT INTO defi_share_prices (strategy_id, at, price)
                VALUES (:s, clock_timestamp(), :p) ON CONFLICT DO NOTHING"""),
        {"s": strategy_id, "p": price},
    )


async def oldest_share_price(
    session: AsyncSession, strategy_id: str, *, window_days: int
) -> tuple[datetime, Decimal, datetime] | None:
    """The oldest share price seen within the window, with the database's now."""
    row = (
        await session.execute(
            text("""SELECT at, price, now() AS now FROM defi_share_prices
                     WHERE strategy_id = :s AND at >= now() - make_interval(days => :d)
                     ORDER BY at LIMIT 1"""),
            {"s": strategy_id, "d": window_days},
        )
    ).one_or_none()
    return None if row is None else (row.at, Decimal(row.price), row.now)


async def shares_held(session: AsyncSession, vault: str) -> tuple[Decimal, Decimal]:
    """For a vault slot: the shares users' positions own (withdrawals in flight included)
    and the platform's residue shares."""
    row = (
        await session.execute(
            text("""SELECT coalesce((SELECT sum(p.shares) FROM defi_positions p
                                       JOIN defi_strategies s ON s.id = p.strategy_id
                                      WHERE s.vault = :v AND p.status = 'open'), 0) AS positions,
                           coalesce((SELECT sum(platform_shares) FROM defi_strategies
                                      WHERE vault = :v), 0) AS platform"""),
            {"v": vault},
        )
    ).one()
    return Decimal(row.positions), Decimal(row.platform)


async def unfinished(session: AsyncSession) -> dict[str, list[str]]:
    """Batches and withdrawals an operator must look at: a batch sent but never settled (or
    whose outcome is unknown), a withdrawal parked as ambiguous."""
    batches = await session.execute(
        text("""SELECT id FROM defi_batches
                 WHERE status = 'ambiguous'
                    OR (status = 'submitted' AND updated_at < now() - interval '10 minutes')
                 ORDER BY created_at""")
    )
    withdrawals = await session.execute(
        text("""SELECT w.transaction_id FROM defi_withdrawals w
                  JOIN transactions t ON t.id = w.transaction_id
                 WHERE w.status = 'pending' AND t.saga_state = 'ambiguous'
                 ORDER BY w.created_at""")
    )
    return {
        "batches": [str(v) for v in batches.scalars()],
        "withdrawals": [str(v) for v in withdrawals.scalars()],
    }


async def booked_total(session: AsyncSession, asset: str) -> tuple[Decimal, Decimal]:
    """Σ of the positions' booked values and Σ of their owners' (users' and organisations')
    DeFi balances in ``asset``."""
    row = (
        await session.execute(
            text("""SELECT coalesce((SELECT sum(p.booked_value) FROM defi_positions p
                                       JOIN defi_strategies s ON s.id = p.strategy_id
                                      WHERE s.asset = :a), 0) AS booked,
                           coalesce((SELECT sum(b.balance) FROM balances b
                                       JOIN accounts a ON a.id = b.account_id
                                      WHERE a.owner_type IN ('user', 'organisation')
                                        AND a.domain = 'defi'
                                        AND a.asset = :a), 0) AS ledger"""),
            {"a": asset},
        )
    ).one()
    return Decimal(row.booked), Decimal(row.ledger)
