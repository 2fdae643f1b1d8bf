"""Deposits into a vault, batched: one vault transaction for every deposit of a strategy
pending when the batch job runs (``defi.deposit_batch``, staged by each investment after
``DIBOAS_DEFI_BATCH_WINDOW_SECONDS``; later jobs find nothing left and do nothing).

1. ``open_batch`` (one transaction): claims the pending deposits (``FOR UPDATE SKIP LOCKED``,
   so two jobs never claim one deposit), writes the batch, and moves each saga to
   ``provider_requested``. A deposit is claimed once: a job delivered again finds it batched
   and never sends it twice.
2. the vault deposit of the batch's total, from the omnibus wallet, outside any transaction.
3. ``settle_batch`` (one transaction): the minted shares are split pro rata to the principal,
   each rounded down to the share's unit — the residue (less than one unit per deposit) is
   the platform's (``defi_strategies.platform_shares``); the gas actually paid is split evenly,
   each share rounded up to the cent and never above what was estimated and held; each hold
   is captured (amount to the platform's external USD, platform fee to the fee account, gas
   to the DeFi gas account, the unused gas estimate released) and the principal enters the
   user's ``defi`` account in the strategy's asset. Or ``fail_batch``: a vault refusal
   releases every hold (the sagas compensate); a vault out of reach before anything was sent
   puts the deposits back to pending for the job's next attempt; a transaction sent whose
   outcome is unknown parks the sagas as ``ambiguous`` — with the signed transaction in the
   step — and stages ``defi.resolve_batch``, which settles it from the chain
   (``chain_resolution``), or leaves it for an operator when the chain cannot tell.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import structlog
from eth_account.signers.local import LocalAccount
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository as transactions
from diboas.banking.repository import Transaction
from diboas.banking.service.common import fee_from_record
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.defi import repository
from diboas.defi import repository_reports as reports
from diboas.defi.protocols import omnibus_for, prices_for, vaults_for, wei_to_usd
from diboas.defi.repository import Position, Strategy
from diboas.defi.service import catalog
from diboas.defi.service.accounts import (
    SYSTEM,
    clearing,
    defi_account,
    external,
    fee_revenue,
    gas_account,
    record,
)
from diboas.kit.money import quantum
from diboas.ledger import holds
from diboas.ledger import service as ledger
from diboas.ledger.holds import HoldStatus
from diboas.ledger.models import Account
from diboas.orchestration import saga
from diboas.orchestration.jobs import stage
from diboas.orchestration.saga import SagaState
from diboas.providers.chain import ChainPendingError
from diboas.providers.defi import VaultMove, VaultProtocol
from diboas.providers.resilience import ProviderError
from diboas.settings import Settings

log = structlog.get_logger(__name__)
_CENT = Decimal("0.01")
RESOLVE_BATCH_JOB = "defi.resolve_batch"


def pending_detail(error: ProviderError) -> dict[str, Any]:
    """What a send of unknown outcome left to go on (its hash, signed bytes, sender and
    nonce), kept in the ``ambiguous`` saga step for the chain resolution."""
    if not isinstance(error, ChainPendingError):
        return {}
    return {
        "pending_tx": {
            "tx_hash": error.tx_hash,
            "raw_transaction": error.raw_transaction,
            "sender": error.sender,
            "nonce": error.nonce,
        }
    }


@dataclass(frozen=True, slots=True)
class Batch:
    """Deposits claimed for one vault transaction."""

    id: uuid.UUID
    strategy: Strategy
    positions: tuple[Position, ...]

    @property
    def total(self) -> Decimal:
        return sum((p.principal for p in self.positions), Decimal(0))


def _state(transaction: Transaction) -> str:
    return transaction.saga_state or SagaState.ACCEPTED.value


def _whose(position: Position) -> dict[str, str]:
    """Names a user's position's owner in the audit details (an organisation's rows are about
    the organisation already)."""
    return {} if position.user_id is None else {"user_id": str(position.user_id)}


async def open_batch(session: AsyncSession, strategy_id: str) -> Batch | None:
    """Claim every pending deposit of the strategy; None when there is none."""
    strategy = await repository.get_strategy(session, strategy_id)
    if strategy is None:
        return None
    pending = await repository.claim_pending(session, strategy_id)
    if not pending:
        return None
    batch = Batch(uuid.uuid4(), strategy, tuple(pending))
    await repository.insert_batch(session, batch.id, strategy.id, batch.total, len(pending))
    for position in pending:
        await repository.update_position(session, position.id, status="batched", batch_id=batch.id)
        transaction = await transactions.get_transaction(
            session, position.deposit_transaction_id, lock=True
        )
        assert transaction is not None  # noqa: S101 - written with the position
        await transactions.set_status(session, transaction, "processing")
        await saga.advance(
            session,
            transaction.id,
            transaction.created_at,
            _state(transaction),
            SagaState.PROVIDER_REQUESTED,
            batch_id=str(batch.id),
            batch_deposits=len(pending),
            batch_assets=str(batch.total),
        )
    return batch


def split_shares(
    minted: Decimal, positions: tuple[Position, ...], scale: int
) -> tuple[dict[uuid.UUID, Decimal], Decimal]:
    """Each deposit's shares (pro rata to its principal, rounded down) and the residue."""
    total = sum((p.principal for p in positions), Decimal(0))
    unit = quantum(scale)
    shares = {
        p.id: (minted * p.principal / total).quantize(unit, rounding=ROUND_DOWN) for p in positions
    }
    return shares, minted - sum(shares.values(), Decimal(0))


async def _capture(
    session: AsyncSession, transaction: Transaction, gas: Decimal
) -> tuple[Decimal, dict[str, str]]:
    """Capture a deposit's hold: amount, platform fee, gas; the rest goes back."""
    fee = fee_from_record(transaction)
    legs: list[tuple[Account, Decimal]] = [(await external(session, "USD"), transaction.amount)]
    if fee.platform > 0:
        legs.append((await fee_revenue(session), fee.platform))
    if fee.provider > 0:
        legs.append((await clearing(session), fee.provider))
    if gas > 0:
        legs.append((await gas_account(session), gas))
    assert transaction.hold_id is not None  # noqa: S101 - every investment holds
    await holds.capture_hold(
        session, transaction.hold_id, destinations=legs, release_remainder=True, kind="defi.deposit"
    )
    charged = fee.platform + fee.provider + gas
    parts = {
        "platform": str(fee.platform),
        "provider": str(fee.provider),
        "network": str(gas),
        "provider_name": fee.provider_name,
    }
    return charged, parts


async def settle_batch(
    session: AsyncSession, batch: Batch, move: VaultMove, gas_paid_usd: Decimal, share_scale: int
) -> None:
    """Split the shares and the gas, capture every hold, credit every position."""
    shares, residue = split_shares(move.shares, batch.positions, share_scale)
    if residue > 0:
        await repository.add_platform_shares(session, batch.strategy.id, residue)
    gas_each = (gas_paid_usd / len(batch.positions)).quantize(_CENT, rounding=ROUND_UP)
    asset = batch.strategy.asset
    for position in sorted(batch.positions, key=lambda p: p.id):
        transaction = await transactions.get_transaction(
            session, position.deposit_transaction_id, lock=True
        )
        assert transaction is not None  # noqa: S101 - written with the position
        held = fee_from_record(transaction).network
        charged, parts = await _capture(session, transaction, min(gas_each, held))
        await ledger.post_entry(
            session,
            kind="defi.deposit",
            postings=[
                (await external(session, asset), -position.principal),
                (await defi_account(session, position.owner, asset), position.principal),
            ],
            reference=f"txn:{transaction.id}",
            metadata={"position_id": str(position.id), "batch_id": str(batch.id)},
        )
        await repository.update_position(
            session,
            position.id,
            status="open",
            shares=shares[position.id],
            booked_value=position.principal,
        )
        await repository.settle_transaction(
            session,
            transaction.id,
            transaction.created_at,
            amount=transaction.amount,
            fee=charged,
            fee_record=parts,
            extra={"shares": str(shares[position.id]), "batch_id": str(batch.id)},
        )
        await saga.advance(
            session,
            transaction.id,
            transaction.created_at,
            _state(transaction),
            SagaState.SETTLED,
            batch_id=str(batch.id),
            shares=str(shares[position.id]),
            gas_usd=str(min(gas_each, held)),
            tx_hashes=list(move.tx_hashes),
        )
        await transactions.set_status(session, transaction, "completed")
        await record(
            session,
            SYSTEM,
            position.owner,
            "defi.deposit.completed",
            transaction.id,
            details={**_whose(position), "shares": str(shares[position.id])},
        )
    await repository.finish_batch(
        session,
        batch.id,
        status="settled",
        shares=move.shares,
        gas_wei=move.gas_fee_wei,
        gas_usd=gas_paid_usd,
        tx_hashes=move.tx_hashes,
    )


async def fail_batch(
    session: AsyncSession,
    batch_id: uuid.UUID,
    error: ProviderError,
    *,
    outcome: str,
    resolve_after: float | None = None,
) -> None:
    """The vault refused (``compensated``: holds released), was never reached (``retry``:
    the deposits wait for the next attempt) or may have acted (``ambiguous``: parked, and
    with ``resolve_after`` seconds the chain resolution is staged)."""
    pending = pending_detail(error) if outcome == "ambiguous" else {}
    for position in await repository.batch_positions(session, batch_id):
        transaction = await transactions.get_transaction(
            session, position.deposit_transaction_id, lock=True
        )
        if transaction is None or transaction.final:
            continue
        detail: dict[str, Any] = {"batch_id": str(batch_id), "reason": str(error)}
        if outcome == "retry":
            await repository.update_position(session, position.id, status="pending", batch_id=None)
            await saga.advance(
                session,
                transaction.id,
                transaction.created_at,
                _state(transaction),
                SagaState.RETRYING,
                **detail,
            )
            continue
        if outcome == "ambiguous":
            await saga.advance(
                session,
                transaction.id,
                transaction.created_at,
                _state(transaction),
                SagaState.AMBIGUOUS,
                **detail,
                **pending,
            )
            continue
        assert transaction.hold_id is not None  # noqa: S101 - every investment holds
        hold = await holds.get_hold(session, transaction.hold_id)
        if hold.status is HoldStatus.ACTIVE:
            await holds.release_hold(session, hold.id)
        await repository.update_position(session, position.id, status="failed")
        await saga.advance(
            session,
            transaction.id,
            transaction.created_at,
            _state(transaction),
            SagaState.COMPENSATED,
            failure_code=error.code,
            hold_released=str(hold.id),
            **detail,
        )
        await transactions.set_status(
            session, transaction, "failed", failure_code=error.code, failure_reason=str(error)
        )
        await record(
            session,
            SYSTEM,
            position.owner,
            "defi.deposit.failed",
            transaction.id,
            outcome="failure",
            details={**_whose(position), "failure_code": error.code},
        )
    status = {"compensated": "failed", "retry": "failed", "ambiguous": "ambiguous"}[outcome]
    hashes = (pending["pending_tx"]["tx_hash"],) if pending else ()
    await repository.finish_batch(
        session, batch_id, status=status, failure=str(error), tx_hashes=hashes
    )
    if pending and resolve_after is not None:
        await stage(
            session,
            RESOLVE_BATCH_JOB,
            {"batch_id": str(batch_id), "delay": resolve_after},
            delay=timedelta(seconds=resolve_after),
        )


async def run_batch(
    sessions: SessionFactory, services: dict[str, Any], settings: Settings, strategy_id: str
) -> uuid.UUID | None:
    """One batch for the strategy: claim, deposit once, settle or compensate. The batch id,
    or None when nothing was pending. Raises (for the job to retry) when the vault could not
    be reached and nothing was sent."""
    vaults = vaults_for(services, settings)
    owner = await omnibus_for(services, settings, sessions)
    # Priced before the vault is called: nothing after the vault's answer may fail but the
    # settlement itself (a failure there would leave a sent transaction unsettled).
    eth = (await prices_for(services).price_usd("ETH")).price_usd
    batch = await run_in_transaction(sessions, lambda s: open_batch(s, strategy_id))
    if batch is None:
        return None
    await send_batch(sessions, vaults[batch.strategy.vault], owner, batch, eth, settings)
    return batch.id


async def send_batch(
    sessions: SessionFactory,
    vault: VaultProtocol,
    owner: LocalAccount,
    batch: Batch,
    eth: Decimal,
    settings: Settings,
) -> None:
    """The vault deposit of a claimed batch, then its settlement or compensation (raises for
    the job to retry when the vault could not be reached and nothing was sent)."""
    try:
        move = await vault.deposit(owner, batch.total)
    except ProviderError as error:
        outcome = (
            "ambiguous"
            if isinstance(error, ChainPendingError)
            else "retry"
            if error.retryable
            else "compensated"
        )
        log.warning(
            "vault deposit failed", batch_id=str(batch.id), outcome=outcome, error=str(error)
        )

        async def compensate(session: AsyncSession, failure: ProviderError = error) -> None:
            await fail_batch(
                session,
                batch.id,
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

    async def settle(session: AsyncSession) -> None:
        await settle_batch(session, batch, move, paid, vault.share_scale)
        if price is not None:
            await reports.record_share_price(session, batch.strategy.id, price)

    await run_in_transaction(sessions, settle)
