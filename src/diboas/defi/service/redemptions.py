"""Withdrawals from a position, done by ``defi.withdraw``:

1. ``begin`` (one transaction) locks the transaction; a final one ends the job. A saga
   already at ``provider_requested`` means an earlier attempt may have redeemed: it is parked
   as ``ambiguous`` (for an operator) rather than redeemed twice from the omnibus wallet.
2. the vault redeems the shares from the omnibus wallet, outside any transaction.
3. ``settle`` (one transaction): the booked value of the redeemed shares leaves the user's
   ``defi`` account (to the platform's external account, where the vault's stablecoin went);
   what the vault paid, rounded down to the cent (the stablecoin taken at par), leaves the
   platform's external USD: the platform fee to the fee account, the gas paid (never more
   than estimated) to the DeFi gas account, the rest to the user's banking USD. The position
   keeps what was not redeemed (closed when nothing is left). Or ``fail``: a vault refusal
   frees the shares (the saga compensates; no money had moved); a redemption sent whose
   answer was lost is parked (``ambiguous``, the signed transaction in the step) and
   ``defi.resolve_withdrawal`` settles it from the chain (``chain_resolution``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository as transactions
from diboas.banking.repository import Transaction
from diboas.banking.service.common import fee_from_record
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.defi import repository
from diboas.defi import repository_reports as reports
from diboas.defi.protocols import omnibus_for, prices_for, vaults_for, wei_to_usd
from diboas.defi.repository import Strategy, Withdrawal
from diboas.defi.service import catalog
from diboas.defi.service.accounts import (
    SYSTEM,
    cash_account,
    clearing,
    defi_account,
    external,
    fee_revenue,
    gas_account,
    record,
)
from diboas.defi.service.batches import pending_detail
from diboas.defi.service.movements import portion
from diboas.ledger import service as ledger
from diboas.ledger.models import Account
from diboas.orchestration import saga
from diboas.orchestration.jobs import stage
from diboas.orchestration.saga import SagaState
from diboas.providers.chain import ChainPendingError
from diboas.providers.defi import VaultMove
from diboas.providers.resilience import ProviderError
from diboas.settings import Settings

log = structlog.get_logger(__name__)
_CENT = Decimal("0.01")
RESOLVE_WITHDRAWAL_JOB = "defi.resolve_withdrawal"


@dataclass(frozen=True, slots=True)
class Redemption:
    """What the job redeems."""

    transaction_id: uuid.UUID
    strategy: Strategy
    shares: Decimal


def _state(transaction: Transaction) -> str:
    return transaction.saga_state or SagaState.ACCEPTED.value


async def _load(
    session: AsyncSession, transaction_id: uuid.UUID
) -> tuple[Transaction, Withdrawal] | None:
    transaction = await transactions.get_transaction(session, transaction_id, lock=True)
    if transaction is None or transaction.final or transaction.type != "defi_withdraw":
        return None
    withdrawal = await repository.get_withdrawal(session, transaction_id)
    if withdrawal is None or withdrawal.status != "pending":
        return None
    return transaction, withdrawal


async def begin(session: AsyncSession, transaction_id: uuid.UUID) -> Redemption | None:
    """Claim a pending withdrawal for the vault; None when there is nothing (safe) to do."""
    loaded = await _load(session, transaction_id)
    if loaded is None:
        return None
    transaction, withdrawal = loaded
    if transaction.saga_state == SagaState.PROVIDER_REQUESTED:
        await saga.advance(
            session,
            transaction.id,
            transaction.created_at,
            _state(transaction),
            SagaState.AMBIGUOUS,
            reason="an earlier attempt may have redeemed; not redeeming twice",
        )
        return None
    if transaction.saga_state == SagaState.AMBIGUOUS:
        return None
    position = await repository.get_position(session, withdrawal.position_id)
    strategy = (
        None if position is None else await repository.get_strategy(session, position.strategy_id)
    )
    if strategy is None:  # pragma: no cover - positions and strategies are never deleted
        raise LookupError(f"withdrawal {transaction_id} has no position or strategy")
    await transactions.set_status(session, transaction, "processing")
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        _state(transaction),
        SagaState.PROVIDER_REQUESTED,
        shares=str(withdrawal.shares),
    )
    return Redemption(transaction.id, strategy, withdrawal.shares)


async def settle(
    session: AsyncSession, redemption: Redemption, move: VaultMove, gas_paid_usd: Decimal
) -> None:
    """Post the withdrawal (see the module docstring)."""
    loaded = await _load(session, redemption.transaction_id)
    if loaded is None:
        return
    transaction, withdrawal = loaded
    position = await repository.get_position(session, withdrawal.position_id, lock=True)
    assert position is not None  # noqa: S101 - checked by begin
    asset = redemption.strategy.asset
    booked = portion(
        position.booked_value, withdrawal.shares, position.shares, redemption.strategy.scale
    )
    principal = portion(
        position.principal, withdrawal.shares, position.shares, redemption.strategy.scale
    )
    if booked > 0:
        await ledger.post_entry(
            session,
            kind="defi.withdraw",
            postings=[
                (await defi_account(session, position.owner, asset), -booked),
                (await external(session, asset), booked),
            ],
            reference=f"txn:{transaction.id}",
            metadata={"position_id": str(position.id), "shares": str(withdrawal.shares)},
        )
    proceeds = move.assets.quantize(_CENT, rounding=ROUND_DOWN)
    fee = fee_from_record(transaction)
    gas = min(gas_paid_usd, fee.network)
    # What the fee and gas take never exceeds what the vault paid.
    platform = min(fee.platform, proceeds)
    provider = min(fee.provider, proceeds - platform)
    gas = min(gas, proceeds - platform - provider)
    credit = proceeds - platform - provider - gas
    legs: list[tuple[Account, Decimal]] = []
    if credit > 0:
        legs.append((await cash_account(session, position.owner, "USD"), credit))
    if platform > 0:
        legs.append((await fee_revenue(session), platform))
    if provider > 0:
        legs.append((await clearing(session), provider))
    if gas > 0:
        legs.append((await gas_account(session), gas))
    if proceeds > 0:
        await ledger.post_entry(
            session,
            kind="defi.withdraw",
            postings=[(await external(session, "USD"), -proceeds), *legs],
            reference=f"txn:{transaction.id}",
            metadata={"position_id": str(position.id), "assets": str(move.assets)},
        )
    left = position.shares - withdrawal.shares
    await repository.update_position(
        session,
        position.id,
        shares=left,
        withdrawing_shares=position.withdrawing_shares - withdrawal.shares,
        principal=position.principal - principal,
        booked_value=position.booked_value - booked,
        status="closed" if left == 0 else "open",
    )
    await repository.finish_withdrawal(session, transaction.id, "settled", move.assets)
    charged = platform + provider + gas
    await repository.settle_transaction(
        session,
        transaction.id,
        transaction.created_at,
        amount=proceeds if proceeds > 0 else transaction.amount,
        fee=charged,
        fee_record={
            "platform": str(platform),
            "provider": str(provider),
            "network": str(gas),
            "provider_name": fee.provider_name,
        },
        extra={"assets_received": str(move.assets), "principal_withdrawn": str(principal)},
    )
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        _state(transaction),
        SagaState.SETTLED,
        assets=str(move.assets),
        credited=str(credit),
        gas_usd=str(gas),
        tx_hashes=list(move.tx_hashes),
    )
    await transactions.set_status(session, transaction, "completed")
    whose = {} if position.user_id is None else {"user_id": str(position.user_id)}
    await record(
        session,
        SYSTEM,
        position.owner,
        "defi.withdraw.completed",
        transaction.id,
        details={**whose, "credited": str(credit)},
    )


async def fail(
    session: AsyncSession,
    transaction_id: uuid.UUID,
    error: ProviderError,
    *,
    outcome: str,
    resolve_after: float | None = None,
) -> None:
    """A vault refusal frees the shares (compensated); unreachable: retried; unknown: parked
    (and with ``resolve_after`` seconds, the chain resolution staged)."""
    loaded = await _load(session, transaction_id)
    if loaded is None:
        return
    transaction, withdrawal = loaded
    detail: dict[str, Any] = {"reason": str(error), "failure_code": error.code}
    if outcome != "compensated":
        state = SagaState.RETRYING if outcome == "retry" else SagaState.AMBIGUOUS
        pending = pending_detail(error) if outcome == "ambiguous" else {}
        await saga.advance(
            session,
            transaction.id,
            transaction.created_at,
            _state(transaction),
            state,
            **detail,
            **pending,
        )
        if pending and resolve_after is not None:
            await stage(
                session,
                RESOLVE_WITHDRAWAL_JOB,
                {"transaction_id": str(transaction.id), "delay": resolve_after},
                delay=timedelta(seconds=resolve_after),
            )
        return
    position = await repository.get_position(session, withdrawal.position_id, lock=True)
    assert position is not None  # noqa: S101 - a withdrawal has its position
    await repository.update_position(
        session, position.id, withdrawing_shares=position.withdrawing_shares - withdrawal.shares
    )
    await repository.finish_withdrawal(session, transaction.id, "failed", None)
    if position.owner.is_organisation:  # a user's refusal shows in their history alone
        await record(
            session,
            SYSTEM,
            position.owner,
            "defi.withdraw.failed",
            transaction.id,
            outcome="failure",
            details={"failure_code": error.code},
        )
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        _state(transaction),
        SagaState.COMPENSATED,
        shares_freed=str(withdrawal.shares),
        **detail,
    )
    await transactions.set_status(
        session, transaction, "failed", failure_code=error.code, failure_reason=str(error)
    )


async def run_withdrawal(
    sessions: SessionFactory,
    services: dict[str, Any],
    settings: Settings,
    transaction_id: uuid.UUID,
) -> None:
    """Redeem a withdrawal's shares and settle it (raises for a retry when the vault could
    not be reached and nothing was sent)."""
    vaults = vaults_for(services, settings)
    owner = await omnibus_for(services, settings, sessions)
    # Priced before the vault is called: nothing after the vault's answer may fail but the
    # settlement itself (a failure there would leave a sent transaction unsettled).
    eth = (await prices_for(services).price_usd("ETH")).price_usd
    redemption = await run_in_transaction(sessions, lambda s: begin(s, transaction_id))
    if redemption is None:
        return
    vault = vaults[redemption.strategy.vault]
    try:
        move = await vault.redeem(owner, redemption.shares)
    except ProviderError as error:
        outcome = (
            "ambiguous"
            if isinstance(error, ChainPendingError)
            else "retry"
            if error.retryable
            else "compensated"
        )
        log.warning("vault redeem failed", transaction_id=str(transaction_id), outcome=outcome)

        async def compensate(session: AsyncSession, failure: ProviderError = error) -> None:
            await fail(
                session,
                transaction_id,
                failure,
                outcome=outcome,
                resolve_after=settings.saga_reconcile_delay_seconds,
            )

        await run_in_transaction(sessions, compensate)
        if outcome == "retry":
            raise
        return
    paid = wei_to_usd(move.gas_fee_wei, eth)
    price = await catalog.share_price(vault)  # None if the vault cannot be read now

    async def finish(session: AsyncSession) -> None:
        await settle(session, redemption, move, paid)
        if price is not None:
            await reports.record_share_price(session, redemption.strategy.id, price)

    await run_in_transaction(sessions, finish)
