"""Vault transactions of unknown outcome, resolved from the chain: a batch deposit or a
withdrawal's redemption whose answer was lost (the connection to the node dropped after
sending, or no receipt in time) is parked as ``ambiguous`` with the signed transaction in its
saga step; the jobs ``defi.resolve_batch`` / ``defi.resolve_withdrawal`` then ask the chain:

- a receipt: the transaction was mined. Status 1 with the vault's event → settled from it
  (the shares minted or the assets paid, and the gas that transaction paid); status 1 without
  one → it was the approval sent before a batch deposit, so the deposit itself was never sent:
  it is sent now, as the batch job would have; status 0 → reverted, compensated (holds
  released, or the shares freed).
- no receipt, and the node has the transaction → still waiting to be mined: asked again
  later (the delay doubles from ``DIBOAS_SAGA_RECONCILE_DELAY_SECONDS`` up to
  ``DIBOAS_SAGA_RECONCILE_MAX_DELAY_SECONDS``).
- no receipt, the node does not have it, and a mined transaction of the wallet used its nonce
  → it can never be mined: compensated (nothing reached the vault).
- no receipt, the node does not have it, its nonce unused → the very same signed transaction
  is sent again (same hash, so it is mined at most once) and its receipt awaited.

A vault that cannot be asked about a transaction (the sandbox) or a send without its signed
bytes (a worker that died between sending and recording) stays for an operator
(``service.resolution``). Each resolution is audited (``defi.batch.resolved`` /
``defi.withdrawal.resolved`` with ``source: chain``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository as transactions
from diboas.compliance import audit
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.defi import repository
from diboas.defi import repository_reports as reports
from diboas.defi.protocols import omnibus_for, prices_for, vaults_for, wei_to_usd
from diboas.defi.repository import Strategy
from diboas.defi.service import batches, catalog, redemptions
from diboas.defi.service.accounts import SYSTEM
from diboas.defi.service.funding import DEPOSIT_BATCH_JOB
from diboas.orchestration import saga
from diboas.orchestration.jobs import stage
from diboas.orchestration.repository import SagaStep
from diboas.orchestration.saga import SagaState
from diboas.providers.chain import ChainRevertedError, ChainUnavailableError, TxReceipt
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.defi import VaultProtocol
from diboas.providers.defi_onchain import Erc4626Vault
from diboas.providers.resilience import ProviderError
from diboas.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Fate:
    """What became of a sent transaction: ``mined`` or ``reverted`` (with its receipt),
    ``pending`` (ask later), ``dropped`` (its nonce went to another: never mined), or
    ``unknown`` (the chain cannot tell: an operator decides)."""

    kind: str
    receipt: TxReceipt | None = None


async def fate_of(chain: Web3Chain, pending: dict[str, Any]) -> Fate:
    """Look a sent transaction up on the chain; sends it again when the node never had it
    and its nonce is still free."""
    tx_hash = str(pending["tx_hash"])
    try:
        receipt = await chain.receipt(tx_hash)
        if receipt is None:
            if await chain.transaction_known(tx_hash):
                return Fate("pending")
            sender, nonce = pending.get("sender"), pending.get("nonce")
            if sender is None or nonce is None or not pending.get("raw_transaction"):
                return Fate("unknown")
            if await chain.confirmed_nonce(str(sender)) > int(nonce):
                # Mined in between the two reads, or replaced for ever: the receipt says.
                receipt = await chain.receipt(tx_hash)
                if receipt is None:
                    return Fate("dropped")
            else:
                await chain.send_raw(str(pending["raw_transaction"]))
                receipt = await chain.wait_for_receipt(tx_hash)
    except ChainUnavailableError:
        return Fate("pending")
    return Fate("mined" if receipt.status == 1 else "reverted", receipt)


def _pending_of(steps: list[SagaStep]) -> dict[str, Any] | None:
    for step in reversed(steps):
        if step.state == SagaState.AMBIGUOUS:
            found = step.detail.get("pending_tx")
            return found if isinstance(found, dict) else None
    return None


def _error(fate: Fate) -> ProviderError:
    if fate.kind == "reverted":
        tx_hash = "" if fate.receipt is None else fate.receipt.tx_hash
        return ChainRevertedError("reverted when mined (found on the chain)", tx_hash=tx_hash)
    return ProviderError(
        "the transaction was never mined and its nonce went to another",
        provider="chain",
        code="chain_tx_dropped",
    )


async def _audit(
    session: AsyncSession, action: str, subject_type: str, subject_id: uuid.UUID, fate: Fate
) -> None:
    await audit.record(
        session,
        SYSTEM,
        action,
        subject_type=subject_type,
        subject_id=subject_id,
        details={
            "source": "chain",
            "fate": fate.kind,
            "tx_hash": None if fate.receipt is None else fate.receipt.tx_hash,
        },
    )


async def _again_later(
    sessions: SessionFactory, settings: Settings, job: str, payload: dict[str, Any]
) -> None:
    delay = min(
        float(payload.get("delay", settings.saga_reconcile_delay_seconds)) * 2,
        settings.saga_reconcile_max_delay_seconds,
    )
    await run_in_transaction(
        sessions,
        lambda s: stage(s, job, {**payload, "delay": delay}, delay=timedelta(seconds=delay)),
    )


def _chain_vault(vaults: dict[str, VaultProtocol], strategy: Strategy) -> Erc4626Vault | None:
    vault = vaults.get(strategy.vault)
    return vault if isinstance(vault, Erc4626Vault) else None


# --- batches ----------------------------------------------------------------------------------


async def _parked_batch(
    session: AsyncSession, batch_id: uuid.UUID
) -> tuple[batches.Batch, dict[str, Any] | None] | None:
    found = await repository.lock_batch(session, batch_id)
    if found is None or found[1] != "ambiguous":
        return None
    strategy = await repository.get_strategy(session, found[0])
    positions = await repository.batch_positions(session, batch_id)
    if strategy is None or not positions:
        return None
    steps = await saga.steps(session, positions[0].deposit_transaction_id)
    return batches.Batch(batch_id, strategy, tuple(positions)), _pending_of(steps)


async def _send_again(session: AsyncSession, batch: batches.Batch, receipt: TxReceipt) -> None:
    """The lost send was the approval: the batch goes back to ``submitted`` and its sagas to
    ``provider_requested`` before its deposit is sent."""
    for position in batch.positions:
        transaction = await transactions.get_transaction(
            session, position.deposit_transaction_id, lock=True
        )
        assert transaction is not None  # noqa: S101 - written with the position
        await saga.advance(
            session,
            transaction.id,
            transaction.created_at,
            transaction.saga_state,
            SagaState.PROVIDER_REQUESTED,
            batch_id=str(batch.id),
            approval_mined=receipt.tx_hash,
        )
    await repository.finish_batch(session, batch.id, status="submitted", failure=None)


async def _deposit_after_approval(
    sessions: SessionFactory,
    services: dict[str, Any],
    settings: Settings,
    vault: Erc4626Vault,
    batch: batches.Batch,
    receipt: TxReceipt,
) -> str:
    """The lost send was the approval, now mined: send the batch's deposit, as its job would
    have (``sent``; ``retry`` when the vault was out of reach and the deposits wait for the
    batch job), unless the batch was resolved meanwhile (``nothing``)."""
    owner = await omnibus_for(services, settings, sessions)
    eth = (await prices_for(services).price_usd("ETH")).price_usd

    async def reopen(session: AsyncSession) -> bool:
        again = await _parked_batch(session, batch.id)
        if again is None:
            return False
        await _send_again(session, again[0], receipt)
        await _audit(
            session, "defi.batch.resolved", "defi_batch", batch.id, Fate("approval_mined", receipt)
        )
        return True

    if not await run_in_transaction(sessions, reopen):
        return "nothing"
    try:
        await batches.send_batch(sessions, vault, owner, batch, eth, settings)
    except ProviderError:
        # The vault was not reached and nothing was sent: the deposits are pending again,
        # and the strategy's batch job takes them (as it would after its own failed attempt).
        await run_in_transaction(
            sessions,
            lambda s: stage(
                s,
                DEPOSIT_BATCH_JOB,
                {"strategy_id": batch.strategy.id},
                delay=timedelta(seconds=settings.saga_reconcile_delay_seconds),
            ),
        )
        return "retry"
    return "sent"


async def resolve_batch(
    sessions: SessionFactory, services: dict[str, Any], settings: Settings, payload: dict[str, Any]
) -> str:
    """Resolve a batch parked as ``ambiguous`` from the chain (see the module docstring); what
    was done: ``settled``, ``compensated``, ``sent`` (the deposit after its approval),
    ``pending`` (asked again later), ``operator`` or ``nothing`` (not parked any more)."""
    batch_id = uuid.UUID(str(payload["batch_id"]))
    vaults = vaults_for(services, settings)
    parked = await run_in_transaction(sessions, lambda s: _parked_batch(s, batch_id))
    if parked is None:
        return "nothing"
    batch, pending = parked
    vault = _chain_vault(vaults, batch.strategy)
    if vault is None or pending is None:
        return "operator"
    eth = (await prices_for(services).price_usd("ETH")).price_usd
    fate = await fate_of(vault.chain, pending)
    log.info("defi batch looked up on the chain", batch_id=str(batch_id), fate=fate.kind)
    if fate.kind in ("pending", "unknown"):
        if fate.kind == "pending":
            await _again_later(sessions, settings, batches.RESOLVE_BATCH_JOB, payload)
        return "pending" if fate.kind == "pending" else "operator"
    move = None if fate.receipt is None else vault.move_in(fate.receipt, "Deposit")
    if fate.kind == "mined" and move is None and fate.receipt is not None:
        return await _deposit_after_approval(
            sessions, services, settings, vault, batch, fate.receipt
        )
    price = await catalog.share_price(vault)

    async def finish(session: AsyncSession) -> str:
        again = await _parked_batch(session, batch_id)
        if again is None:  # resolved meanwhile (an operator, another delivery of the job)
            return "nothing"
        if move is not None:
            paid = wei_to_usd(move.gas_fee_wei, eth)
            await batches.settle_batch(session, again[0], move, paid, vault.share_scale)
            if price is not None:
                await reports.record_share_price(session, batch.strategy.id, price)
            outcome = "settled"
        else:
            await batches.fail_batch(session, batch_id, _error(fate), outcome="compensated")
            outcome = "compensated"
        await _audit(session, "defi.batch.resolved", "defi_batch", batch_id, fate)
        return outcome

    return await run_in_transaction(sessions, finish)


# --- withdrawals ------------------------------------------------------------------------------


async def _parked_withdrawal(
    session: AsyncSession, transaction_id: uuid.UUID
) -> tuple[redemptions.Redemption, dict[str, Any] | None] | None:
    transaction = await transactions.get_transaction(session, transaction_id, lock=True)
    if transaction is None or transaction.saga_state != SagaState.AMBIGUOUS:
        return None
    withdrawal = await repository.get_withdrawal(session, transaction_id)
    if withdrawal is None or withdrawal.status != "pending":
        return None
    position = await repository.get_position(session, withdrawal.position_id)
    strategy = (
        None if position is None else await repository.get_strategy(session, position.strategy_id)
    )
    if strategy is None:
        return None
    pending = _pending_of(await saga.steps(session, transaction_id))
    return redemptions.Redemption(transaction_id, strategy, withdrawal.shares), pending


async def resolve_withdrawal(
    sessions: SessionFactory, services: dict[str, Any], settings: Settings, payload: dict[str, Any]
) -> str:
    """Resolve a withdrawal parked as ``ambiguous`` from the chain: ``settled``,
    ``compensated``, ``pending``, ``operator`` or ``nothing``."""
    transaction_id = uuid.UUID(str(payload["transaction_id"]))
    vaults = vaults_for(services, settings)
    parked = await run_in_transaction(sessions, lambda s: _parked_withdrawal(s, transaction_id))
    if parked is None:
        return "nothing"
    redemption, pending = parked
    vault = _chain_vault(vaults, redemption.strategy)
    if vault is None or pending is None:
        return "operator"
    eth = (await prices_for(services).price_usd("ETH")).price_usd
    fate = await fate_of(vault.chain, pending)
    log.info("defi withdrawal looked up on the chain", transaction_id=str(transaction_id))
    if fate.kind == "pending":
        await _again_later(sessions, settings, redemptions.RESOLVE_WITHDRAWAL_JOB, payload)
        return "pending"
    move = None if fate.receipt is None else vault.move_in(fate.receipt, "Withdraw")
    if fate.kind == "unknown" or (fate.kind == "mined" and move is None):
        return "operator"
    price = await catalog.share_price(vault)

    async def finish(session: AsyncSession) -> str:
        if await _parked_withdrawal(session, transaction_id) is None:
            return "nothing"
        if move is not None:
            await redemptions.settle(session, redemption, move, wei_to_usd(move.gas_fee_wei, eth))
            if price is not None:
                await reports.record_share_price(session, redemption.strategy.id, price)
            outcome = "settled"
        else:
            await redemptions.fail(session, transaction_id, _error(fate), outcome="compensated")
            outcome = "compensated"
        await _audit(session, "defi.withdrawal.resolved", "transaction", transaction_id, fate)
        return outcome

    return await run_in_transaction(sessions, finish)
