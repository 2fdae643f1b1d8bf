"""The portfolio: holdings from the ledger, cost basis from FIFO lots, profit and loss.

Quantities are the user's investing balances in the ledger (available + held). Cost basis is
what is left of the open lots' cost (each lot's cost includes its buy fee). Realised P&L is
the sum over disposals of proceeds (net of the sell fee) less the cost basis they consumed;
unrealised P&L is today's value less the remaining cost basis. Values are rounded to the
cent half-even, for display only.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.investing import repository
from diboas.investing.repository import Lot

_CENT = Decimal("0.01")
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class PortfolioBasis:
    """What the portfolio is computed from, read in one transaction."""

    quantities: dict[str, tuple[Decimal, int]]
    lots: list[Lot]
    realised: dict[str, Decimal]

    def assets(self) -> set[str]:
        held = {a for a, (q, _) in self.quantities.items() if q != 0}
        return held | set(self.realised) | {lot.asset for lot in self.lots}


@dataclass(frozen=True, slots=True)
class Holding:
    """One asset's line of the portfolio, in USD where it is money."""

    asset: str
    scale: int
    quantity: Decimal
    cost_basis: Decimal
    average_cost: Decimal | None
    price: Decimal
    value_usd: Decimal
    unrealised_pnl: Decimal
    realised_pnl: Decimal
    priced_at: datetime | None = None
    price_stale: bool = False


@dataclass(frozen=True, slots=True)
class Portfolio:
    """Every line, with totals (sums of the shown lines)."""

    holdings: list[Holding]
    as_of: datetime

    def total(self, attribute: str) -> Decimal:
        return sum((getattr(h, attribute) for h in self.holdings), _ZERO)


async def basis(session: AsyncSession, user_id: uuid.UUID) -> PortfolioBasis:
    """Balances, open lots and realised P&L of a user."""
    return PortfolioBasis(
        quantities=await repository.holdings(session, user_id),
        lots=await repository.open_lots(session, user_id),
        realised=await repository.realised(session, user_id),
    )


def value(
    found: PortfolioBasis,
    prices: dict[str, Decimal],
    as_of: datetime,
    *,
    priced_at: Mapping[str, datetime] | None = None,
    stale: Set[str] = frozenset(),
) -> Portfolio:
    """Value the holdings at ``prices`` (observed at ``priced_at``; ``stale`` too old)."""
    observed = priced_at or {}
    lines: list[Holding] = []
    for asset in sorted(found.assets()):
        quantity, scale = found.quantities.get(asset, (_ZERO, 8))
        lots = [lot for lot in found.lots if lot.asset == asset]
        cost = sum((lot.remaining_cost for lot in lots), _ZERO)
        lot_quantity = sum((lot.remaining for lot in lots), _ZERO)
        average = (cost / lot_quantity).quantize(_CENT, ROUND_HALF_EVEN) if lot_quantity else None
        worth = (quantity * prices[asset]).quantize(_CENT, ROUND_HALF_EVEN)
        lines.append(
            Holding(
                asset=asset,
                scale=scale,
                quantity=quantity,
                cost_basis=cost.quantize(_CENT, ROUND_HALF_EVEN),
                average_cost=average,
                price=prices[asset],
                value_usd=worth,
                unrealised_pnl=(worth - cost).quantize(_CENT, ROUND_HALF_EVEN),
                realised_pnl=found.realised.get(asset, _ZERO).quantize(_CENT, ROUND_HALF_EVEN),
                priced_at=observed.get(asset),
                price_stale=asset in stale,
            )
        )
    return Portfolio(lines, as_of)
