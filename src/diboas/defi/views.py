"""How DeFi movements and positions are shown (positions valued at the vault's share price
now, in the strategy's asset and in USD)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from diboas.banking.repository import Transaction
from diboas.defi import schemas
from diboas.defi.protocols import prices_for, read_vault, vaults_for
from diboas.defi.repository import Position, Strategy
from diboas.defi.service import valuation
from diboas.defi.service.movements import Accepted
from diboas.kit.money import format_amount
from diboas.settings import Settings

_CENT = Decimal("0.01")


def _usd(value: Decimal) -> str:
    return format_amount(value, 2)


def movement_out(accepted: Accepted) -> schemas.MovementOut:
    """A DeFi movement as its owner sees it."""
    transaction: Transaction = accepted.transaction
    fee = transaction.metadata.get("fee", {})
    return schemas.MovementOut(
        id=transaction.id,
        status=transaction.status,
        type=transaction.type,
        position_id=accepted.position_id,
        strategy_id=str(transaction.metadata.get("strategy_id", "")),
        amount=_usd(transaction.amount),
        currency=transaction.asset,
        fee=_usd(transaction.fee),
        fee_breakdown=schemas.FeeOut(
            **{
                part: _usd(Decimal(fee.get(part, "0")))
                for part in ("platform", "provider", "network")
            }
        ),
        created_at=transaction.created_at,
    )


@dataclass(frozen=True, slots=True)
class Totals:
    """Live positions (not closed or failed) in USD, each part rounded half-even to the cent
    and summed as shown: their value now, the principal still in, and the yield accrued on
    the open ones (value over principal)."""

    value_usd: Decimal
    principal_usd: Decimal
    accrued_yield_usd: Decimal
    live_positions: int


_LIVE = ("funding", "pending", "batched", "open")


def _cents(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_EVEN)


async def positions_out(
    services: dict[str, Any],
    settings: Settings,
    positions: list[Position],
    strategies: dict[str, Strategy],
) -> schemas.PositionsOut:
    """Positions valued at the vault's share price now (the vault read here: call it outside
    any transaction), newest first as given, with their total value in USD."""
    out, _ = await positions_with_totals(services, settings, positions, strategies)
    return out


async def positions_with_totals(
    services: dict[str, Any],
    settings: Settings,
    positions: list[Position],
    strategies: dict[str, Strategy],
) -> tuple[schemas.PositionsOut, Totals]:
    """``positions_out`` and the live positions' ``Totals``."""
    vaults = vaults_for(services, settings)
    _, prices = await prices_for(services).prices_for({s.asset for s in strategies.values()})
    items, total = [], Decimal(0)
    principal_usd, yield_usd, live = Decimal(0), Decimal(0), 0
    for position in positions:
        strategy = strategies[position.strategy_id]
        valued = valuation.Valued(
            position, await read_vault(valuation.value_of(vaults.get(strategy.vault), position))
        )
        price = prices[strategy.asset]
        worth = _cents(valued.value * price)
        if position.status in _LIVE:
            total += worth
            principal_usd += _cents(position.principal * price)
            yield_usd += _cents(valued.accrued_yield * price)
            live += 1
        scale = strategy.scale
        items.append(
            schemas.PositionOut(
                id=position.id,
                strategy_id=position.strategy_id,
                status=position.status,
                asset=strategy.asset,
                shares=format_amount(position.shares, scale),
                withdrawing_shares=format_amount(position.withdrawing_shares, scale),
                principal=format_amount(position.principal, scale),
                value=format_amount(valued.value, scale),
                accrued_yield=format_amount(valued.accrued_yield, scale),
                value_usd=_usd(worth),
                locked_until=position.locked_until,
                deposit_transaction_id=position.deposit_transaction_id,
                created_at=position.created_at,
            )
        )
    totals = Totals(total, principal_usd, yield_usd, live)
    return schemas.PositionsOut(items=items, total_value_usd=_usd(total)), totals
