"""Positions valued at the vault's share price, and yield booked in the ledger.

A position's value is what its shares would redeem for now (``preview_redeem``: the vault's
own arithmetic, rounded in the vault's favour). The ledger holds each position's *booked*
value in the user's ``defi`` account; ``accrue`` (the periodic job ``defi.accrue_yield``,
every ``DIBOAS_DEFI_ACCRUAL_INTERVAL_SECONDS``) posts the difference — the yield earned
since the last booking — from the platform's external account of the asset, so the unified
balance shows the yield. Positions with a withdrawal in flight are left alone until it
settles. The share price seen is recorded each time (the catalog's APY comes from it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.defi import repository
from diboas.defi import repository_reports as reports
from diboas.defi.protocols import vaults_for
from diboas.defi.repository import Position, Strategy
from diboas.defi.service.accounts import defi_account, external
from diboas.ledger import service as ledger
from diboas.providers.defi import VaultProtocol
from diboas.settings import Settings


@dataclass(frozen=True, slots=True)
class Valued:
    """A position with its value now."""

    position: Position
    value: Decimal

    @property
    def accrued_yield(self) -> Decimal:
        """Value over principal; nothing before the shares exist or after a failure."""
        if self.position.status not in ("open", "closed"):
            return Decimal(0)
        return self.value - self.position.principal


async def value_of(vault: VaultProtocol | None, position: Position) -> Decimal:
    """What the position's shares would redeem for now (its principal while pending)."""
    if position.status in ("funding", "pending", "batched"):
        return position.principal
    if vault is None or position.shares == 0:
        return Decimal(0)
    return await vault.preview_redeem(position.shares)


async def _book(
    session: AsyncSession,
    strategy_id: str,
    asset: str,
    values: dict[uuid.UUID, tuple[Decimal, Decimal]],
) -> int:
    booked = 0
    for position in await repository.open_positions(session, strategy_id):
        seen = values.get(position.id)
        # Only positions whose shares are as valued, with no withdrawal in flight.
        if seen is None or seen[0] != position.shares or position.withdrawing_shares > 0:
            continue
        delta = seen[1] - position.booked_value
        if delta == 0:
            continue
        await ledger.post_entry(
            session,
            kind="defi.yield",
            postings=[
                (await external(session, asset), -delta),
                (await defi_account(session, position.owner, asset), delta),
            ],
            reference=f"defi:yield:{position.id}",
            metadata={"position_id": str(position.id), "value": str(seen[1])},
        )
        await repository.update_position(session, position.id, booked_value=seen[1])
        booked += 1
    return booked


async def _accrue_strategy(
    sessions: SessionFactory, vault: VaultProtocol, strategy: Strategy
) -> int:
    # The vault is read before the transaction (never while a connection waits on it).
    async def read(session: AsyncSession) -> list[Position]:
        return await repository.open_positions(session, strategy.id)

    positions = await run_in_transaction(sessions, read)
    values = {p.id: (p.shares, await value_of(vault, p)) for p in positions}
    price = await vault.share_price()

    async def book(session: AsyncSession) -> int:
        await reports.record_share_price(session, strategy.id, price)
        return await _book(session, strategy.id, strategy.asset, values)

    return await run_in_transaction(sessions, book)


async def accrue(sessions: SessionFactory, services: dict[str, Any], settings: Settings) -> int:
    """Book every open position's yield since the last booking; how many were booked."""
    vaults = vaults_for(services, settings)
    strategies = await run_in_transaction(sessions, repository.list_strategies)
    booked = 0
    for strategy in strategies:
        vault = vaults.get(strategy.vault)
        if vault is not None:
            booked += await _accrue_strategy(sessions, vault, strategy)
    return booked
