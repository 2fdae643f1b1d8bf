"""Investing and withdrawing as whole steps — the vault asked (gas estimated, redemption
previewed) outside any transaction, then a unit of work that accepts the movement — shared by
the API and the web app, for a user's own money and (``owner``) an organisation's treasury."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.api.deps import Database
from diboas.compliance.audit import AuditContext
from diboas.defi import repository, schemas
from diboas.defi.errors import (
    ExceedsPositionError,
    StrategyNotFoundError,
    VaultRefusedError,
    VaultUnavailableError,
)
from diboas.defi.owners import Owner
from diboas.defi.protocols import gas_usd, omnibus_for, prices_for, read_vault, vaults_for
from diboas.defi.repository import Position, Strategy
from diboas.defi.service import catalog, movements
from diboas.defi.service.movements import Accepted, WithdrawalPlan
from diboas.kit.money import parse_amount
from diboas.providers.chain import GasQuote
from diboas.providers.defi import VaultOperation, VaultProtocol
from diboas.providers.resilience import ProviderError

_CENT = Decimal("0.01")
Work = Callable[[AsyncSession], Awaitable[Accepted]]


async def strategy_of(db: Database, strategy_id: str) -> Strategy:
    """The strategy, or 404."""
    strategy = await db.run(lambda s: repository.get_strategy(s, strategy_id))
    if strategy is None:
        raise StrategyNotFoundError("no such strategy", details={"strategy_id": strategy_id})
    return strategy


async def catalog_views(db: Database, services: dict[str, Any]) -> list[catalog.StrategyView]:
    """Every strategy with its APY, share price and availability."""
    vaults = vaults_for(services, db.settings)
    strategies = await db.run(repository.list_strategies)
    # The vaults are read outside any transaction (a chain call never holds a connection).
    prices = {s.id: await catalog.share_price(vaults.get(s.vault)) for s in strategies}

    async def read(session: AsyncSession) -> list[catalog.StrategyView]:
        return [await catalog.view(session, db.settings, s, prices[s.id]) for s in strategies]

    return await db.run(read)


async def estimate(
    vault: VaultProtocol, owner: str, operation: VaultOperation, amount: Decimal
) -> GasQuote:
    """The vault's gas estimate; what it would refuse is refused here, before any money moves."""
    try:
        return await vault.estimate_gas(owner, operation, amount)
    except ProviderError as error:
        if error.retryable:
            raise VaultUnavailableError("the vault cannot be reached now; try again") from error
        raise VaultRefusedError(
            "the vault would refuse this", details={"reason": str(error), "code": error.code}
        ) from error


async def invest(
    db: Database,
    services: dict[str, Any],
    *,
    user_id: uuid.UUID,
    body: schemas.InvestIn,
    context: AuditContext,
    owner: Owner | None = None,
) -> Work:
    """Gas estimated and priced for an investment; returns the unit of work accepting it.
    ``user_id`` acts; ``owner`` is whose money (the user's own when None)."""
    strategy = await strategy_of(db, body.strategy_id)
    vault = catalog.vault_of(vaults_for(services, db.settings), strategy)
    omnibus = await omnibus_for(services, db.settings, db.sessions)
    gas = await estimate(vault, omnibus.address, "deposit", parse_amount(body.amount, 2))
    gas_price_usd = await gas_usd(prices_for(services), gas)

    async def accept(session: AsyncSession) -> Accepted:
        return await movements.invest(
            session,
            db.settings,
            user_id=user_id,
            strategy=strategy,
            amount_text=body.amount,
            acknowledge_risk=body.acknowledge_risk,
            gas_usd=gas_price_usd,
            vault_name=vault.name,
            context=context,
            funding=body.funding,
            owner=owner,
        )

    return accept


async def _plan(
    vault: VaultProtocol, owner: str, position: Position, amount: str | None, services: Any
) -> WithdrawalPlan:
    if amount is None:
        shares = position.free_shares
        expected = (await read_vault(vault.preview_redeem(shares))).quantize(
            _CENT, rounding=ROUND_DOWN
        )
    else:
        expected = parse_amount(amount, 2)
        worth = await read_vault(vault.preview_redeem(position.free_shares))
        shares = (
            await read_vault(vault.preview_withdraw(expected)) if expected <= worth else worth + 1
        )
        if shares > position.free_shares:
            raise ExceedsPositionError(
                "the position is worth less than that",
                details={"position_id": str(position.id), "value": str(worth)},
            )
    gas = await estimate(vault, owner, "redeem", shares)
    return WithdrawalPlan(shares, expected, await gas_usd(prices_for(services), gas))


async def withdraw(
    db: Database,
    services: dict[str, Any],
    *,
    user_id: uuid.UUID,
    position_id: uuid.UUID,
    amount: str | None,
    context: AuditContext,
    owner: Owner | None = None,
) -> Work:
    """A withdrawal previewed at the vault (all of the position with ``amount`` None);
    returns the unit of work accepting it. ``user_id`` acts; ``owner`` is whose position
    (the user's own when None)."""
    whose = owner or Owner.user(user_id)

    async def look(session: AsyncSession) -> Position:
        position = await movements.own_position(session, position_id, whose)
        await movements.check_withdrawable(session, position)
        return position

    position = await db.run(look)
    strategy = await strategy_of(db, position.strategy_id)
    vault = catalog.vault_of(vaults_for(services, db.settings), strategy)
    omnibus = await omnibus_for(services, db.settings, db.sessions)
    plan = await _plan(vault, omnibus.address, position, amount, services)

    async def accept(session: AsyncSession) -> Accepted:
        return await movements.withdraw(
            session,
            user_id=user_id,
            position_id=position_id,
            plan=plan,
            whole=amount is None,
            context=context,
            owner=whose,
        )

    return accept
