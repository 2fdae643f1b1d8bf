"""An operator settles what the platform could not: a batch sent to the vault whose outcome
is unknown (or whose worker died before settling it), a withdrawal parked as ambiguous.

The operator has looked at the chain (the transaction, the omnibus wallet's shares — see the
reconciliation) and says what happened: the batch was deposited and minted ``shares`` (it is
settled exactly as the job would have, with no gas charged to the customers: the platform
does not know it), or it never reached the vault (every hold is released); the withdrawal was
redeemed for ``assets``, or not (its shares are freed). Each decision is audited.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.defi import repository
from diboas.defi.service import batches, redemptions
from diboas.kit.errors import ConflictError, NotFoundError
from diboas.providers.defi import VaultMove
from diboas.providers.resilience import ProviderError

_SHARE_SCALE = 6  # the vaults' share decimals (checked for on-chain vaults by Erc4626Vault)


def _operator_error(message: str) -> ProviderError:
    return ProviderError(message, provider="operator", code="operator_resolved")


async def resolve_batch(
    session: AsyncSession,
    batch_id: uuid.UUID,
    *,
    deposited: bool,
    shares: Decimal | None,
    context: AuditContext,
) -> str:
    """Settle (``deposited`` with the shares minted) or compensate an unfinished batch."""
    found = await repository.lock_batch(session, batch_id)
    if found is None:
        raise NotFoundError("no such batch", details={"batch_id": str(batch_id)})
    strategy_id, status = found
    if status not in ("submitted", "ambiguous"):
        raise ConflictError("this batch is finished", details={"status": status})
    if deposited:
        strategy = await repository.get_strategy(session, strategy_id)
        positions = await repository.batch_positions(session, batch_id)
        if strategy is None or not positions or shares is None:
            raise ConflictError("the batch cannot be settled", details={"batch_id": str(batch_id)})
        batch = batches.Batch(batch_id, strategy, tuple(positions))
        move = VaultMove(batch.total, shares, (), 0)
        await batches.settle_batch(session, batch, move, Decimal(0), _SHARE_SCALE)
        outcome = "settled"
    else:
        error = _operator_error("an operator found the batch never reached the vault")
        await batches.fail_batch(session, batch_id, error, outcome="compensated")
        outcome = "compensated"
    await audit.record(
        session,
        context,
        "defi.batch.resolved",
        subject_type="defi_batch",
        subject_id=batch_id,
        details={"outcome": outcome, "shares": None if shares is None else str(shares)},
    )
    return outcome


async def resolve_withdrawal(
    session: AsyncSession,
    transaction_id: uuid.UUID,
    *,
    redeemed: bool,
    assets: Decimal | None,
    context: AuditContext,
) -> str:
    """Settle (``redeemed`` for ``assets``) or compensate a withdrawal parked as ambiguous."""
    withdrawal = await repository.get_withdrawal(session, transaction_id)
    if withdrawal is None:
        raise NotFoundError("no such withdrawal", details={"transaction_id": str(transaction_id)})
    if withdrawal.status != "pending":
        raise ConflictError("this withdrawal is finished", details={"status": withdrawal.status})
    if redeemed:
        position = await repository.get_position(session, withdrawal.position_id)
        strategy = (
            None
            if position is None
            else await repository.get_strategy(session, position.strategy_id)
        )
        if strategy is None or assets is None:
            raise ConflictError("the withdrawal cannot be settled")
        redemption = redemptions.Redemption(transaction_id, strategy, withdrawal.shares)
        move = VaultMove(assets, withdrawal.shares, (), 0)
        await redemptions.settle(session, redemption, move, Decimal(0))
        outcome = "settled"
    else:
        error = _operator_error("an operator found the shares were never redeemed")
        await redemptions.fail(session, transaction_id, error, outcome="compensated")
        outcome = "compensated"
    await audit.record(
        session,
        context,
        "defi.withdrawal.resolved",
        subject_type="transaction",
        subject_id=transaction_id,
        details={"outcome": outcome, "assets": None if assets is None else str(assets)},
    )
    return outcome
