"""How DeFi movements and positions are shown (positions valued at the vault's share price
now, in the strategy's asset and in USD)."""

from __future__ import annotations

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


async def positions_out(
    services: dict[str, Any],
    settings: Settings,
    positions: list[Position],
    strategies: dict[str, Strategy],
) -> schemas.PositionsOut:
    vaults = vaults_for(services, settings)
    _, prices = await prices_for(services).prices_for({s.asset for s in strategies.values()})
    items, total = [], Decimal(0)
    for position in positions:
        strategy = strategies[position.strategy_id]
        valued = valuation.Valued(
            position, await read_vault(valuation.value_of(vaults.get(strategy.vault), position))
        )
        worth = (valued.value * prices[strategy.asset]).quantize(_CENT, rounding=ROUND_HALF_EVEN)
        if position.status in ("funding", "pending", "batched", "open"):
            total += worth
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
    return schemas.PositionsOut(items=items, total_value_usd=_usd(total))
