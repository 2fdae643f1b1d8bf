"""Settling deposits and payouts once the payment provider has answered.

A settlement job runs in three steps, each its own short transaction, with the provider
call between them and outside any transaction:

1. ``begin`` locks the transaction row; a final one ends the job (a repeated delivery).
   Otherwise it is marked ``processing`` and the job gets what the provider needs.
2. the job calls the provider with an idempotency key derived from the transaction id.
3. ``finish_deposit`` / ``finish_payout`` lock the row again and, if it is still open, post
   the ledger change and close it; ``record_pending`` notes a payment the provider is still
   working on and stages the job again for later.

Delivery is at-least-once: the status under the row lock is the guard, and a deposit's
ledger entry also carries the transaction as its reference, checked before posting.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository
from diboas.banking.repository import Transaction
from diboas.banking.service import reversals
from diboas.banking.service.common import bank_details, banking_account, fee_from_record
from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.fees import service as fees
from diboas.ledger import holds
from diboas.ledger import service as ledger
from diboas.ledger.holds import HoldStatus
from diboas.ledger.models import AccountKind
from diboas.orchestration import saga
from diboas.orchestration.jobs import stage
from diboas.orchestration.saga import SagaState
from diboas.providers.payments import (
    DEFAULT_CARD,
    BankAccountDetails,
    CardSource,
    PaymentResult,
    PaymentStatus,
)
from diboas.settings import Settings

log = structlog.get_logger(__name__)

# Settlement is done by the platform itself, not by a person.
SYSTEM = AuditContext(actor_role="system")


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """What a job needs to call the provider about one transaction."""

    transaction: Transaction
    started: bool  # this run moved it from pending to processing
    card: CardSource | None
    bank: BankAccountDetails | None

    @property
    def idempotency_key(self) -> str:
        """The same key for every attempt at this transaction: the provider moves money once."""
        return provider_key(self.transaction)


def provider_key(transaction: Transaction) -> str:
    """The idempotency key the provider knows a transaction's request by."""
    return f"diboas:{transaction.type}:{transaction.id}"


async def parked(session: AsyncSession, transaction_id: uuid.UUID) -> Transaction | None:
    """The transaction, locked, if its saga is parked on an ambiguous outcome."""
    transaction = await repository.get_transaction(session, transaction_id, lock=True)
    if transaction is None or transaction.final:
        return None
    return transaction if transaction.saga_state == SagaState.AMBIGUOUS else None


async def _open(
    session: AsyncSession, transaction_id: uuid.UUID, expected_type: str
) -> Transaction | None:
    transaction = await repository.get_transaction(session, transaction_id, lock=True)
    if transaction is None or transaction.type != expected_type:
        log.error("settlement for an unknown transaction", transaction_id=str(transaction_id))
        return None
    return None if transaction.final else transaction


async def begin(
    session: AsyncSession,
    settings: Settings,
    transaction_id: uuid.UUID,
    *,
    expected_type: str,
    provider: Callable[[Transaction], str],
) -> ProviderCall | None:
    """Claim an open transaction for a provider call; None when there is nothing to do.

    ``provider`` names the provider that will serve this transaction (it depends on its method).
    """
    transaction = await _open(session, transaction_id, expected_type)
    if transaction is None:
        return None
    started = transaction.status == "pending"
    if started:
        transaction = await repository.set_status(
            session, transaction, "processing", provider=provider(transaction)
        )
    if transaction.provider_reference is None:  # a first request, not a poll of a payment
        await saga.advance(
            session,
            transaction.id,
            transaction.created_at,
            _state(transaction),
            SagaState.PROVIDER_REQUESTED,
            provider=provider(transaction),
        )
    bank = None
    if transaction.bank_account_id is not None:
        # Removed since the movement was accepted is fine: it was valid when the user asked.
        account = await repository.get_bank_account(
            session, transaction.bank_account_id, active_only=False
        )
        if account is None:  # pragma: no cover - bank accounts are never deleted
            raise LookupError(f"bank account {transaction.bank_account_id} is missing")
        bank = bank_details(settings, account)
    card = None
    if transaction.method == "card":
        card = CardSource(str(transaction.metadata.get("payment_method", DEFAULT_CARD)))
    return ProviderCall(transaction, started, card, bank)


async def record_pending(
    session: AsyncSession,
    transaction_id: uuid.UUID,
    result: PaymentResult,
    *,
    job: str,
    poll_after: timedelta,
) -> None:
    """The provider is still working: keep its reference and ask again after ``poll_after``."""
    transaction = await repository.get_transaction(session, transaction_id, lock=True)
    if transaction is None or transaction.final:
        return
    await repository.set_status(
        session, transaction, "processing", provider_reference=result.reference
    )
    waiting = (
        SagaState.AWAITING_CUSTOMER
        if result.failure_code == "requires_action"
        else SagaState.AWAITING_PROVIDER
    )
    if transaction.saga_state != waiting:  # each poll that changes nothing adds no step
        await saga.advance(
            session,
            transaction.id,
            transaction.created_at,
            _state(transaction),
            waiting,
            reference=result.reference,
        )
    await stage(session, job, {"transaction_id": str(transaction_id)}, delay=poll_after)


def _state(transaction: Transaction) -> str:
    # Movements accepted before sagas were recorded count as accepted.
    return transaction.saga_state or SagaState.ACCEPTED.value


async def park(
    session: AsyncSession,
    transaction_id: uuid.UUID,
    *,
    reason: str,
    reconcile_after: timedelta,
    job: str,
    payload: dict[str, Any] | None = None,
) -> bool:
    """The provider may have acted on a request whose answer was lost: park the saga and
    stage the reconciliation job that will ask the provider. False if it settled meanwhile."""
    transaction = await repository.get_transaction(session, transaction_id, lock=True)
    if transaction is None or transaction.final:
        return False
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        _state(transaction),
        SagaState.AMBIGUOUS,
        reason=reason,
    )
    await stage(
        session,
        job,
        {"transaction_id": str(transaction_id), **(payload or {})},
        delay=reconcile_after,
    )
    return True


async def resend(session: AsyncSession, transaction_id: uuid.UUID, *, job: str) -> None:
    """A parked request the provider never received: note it and send it again (same key)."""
    transaction = await parked(session, transaction_id)
    if transaction is None:
        return
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        _state(transaction),
        SagaState.AMBIGUOUS,
        reason="the provider has not (fully) received the request; sending it again",
    )
    await stage(session, job, {"transaction_id": str(transaction_id)})


async def note_retry(
    session: AsyncSession, transaction_id: uuid.UUID, *, reason: str, attempt: int
) -> None:
    """The provider refused to work for now (nothing was done): the job will try again."""
    transaction = await repository.get_transaction(session, transaction_id, lock=True)
    if transaction is None or transaction.final:
        return
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        _state(transaction),
        SagaState.RETRYING,
        reason=reason,
        attempt=attempt,
    )


async def _close(
    session: AsyncSession,
    transaction: Transaction,
    result: PaymentResult,
    *,
    source: str,
    compensated: bool = False,
) -> Transaction:
    succeeded = result.status is PaymentStatus.SUCCEEDED
    outcome = SagaState.SETTLED if succeeded else SagaState.FAILED
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        _state(transaction),
        SagaState.COMPENSATED if compensated and not succeeded else outcome,
        source=source,
        reference=result.reference,
        failure_code=result.failure_code,
    )
    closed = await repository.set_status(
        session,
        transaction,
        "completed" if succeeded else "failed",
        provider_reference=result.reference or None,
        failure_code=None if succeeded else (result.failure_code or "payment_failed"),
        failure_reason=None if succeeded else result.failure_message,
    )
    await audit.record(
        session,
        SYSTEM,
        f"banking.{transaction.type}.{'completed' if succeeded else 'failed'}",
        outcome="success" if succeeded else "failure",
        subject_type="transaction",
        subject_id=transaction.id,
        details={
            "user_id": str(transaction.user_id),
            "provider_reference": result.reference,
            "failure_code": closed.failure_code,
        },
    )
    return closed


async def finish_deposit(
    session: AsyncSession,
    transaction_id: uuid.UUID,
    result: PaymentResult,
    *,
    source: str = "provider",
) -> Transaction | None:
    """Credit a paid deposit (amount in, fee out: one entry) or fail a declined one."""
    transaction = await _open(session, transaction_id, "deposit")
    if transaction is None:
        return None
    reference = f"txn:{transaction.id}"
    if result.status is PaymentStatus.SUCCEEDED and not await repository.entry_exists(
        session, reference
    ):
        account = await banking_account(session, transaction.user_id, transaction.asset)
        external = await ledger.platform_account(
            session, asset=transaction.asset, kind=AccountKind.EXTERNAL
        )
        fee = fee_from_record(transaction)
        await ledger.post_entry(
            session,
            kind="banking.deposit",
            postings=[
                (external, -transaction.amount),
                (account, transaction.amount),
                *await fees.fee_postings(session, account, fee),
                # A debt from an earlier reversal is paid off first.
                *await reversals.repayment_postings(
                    session, transaction.user_id, transaction.asset, transaction.amount - fee.total
                ),
            ],
            reference=reference,
            metadata={"transaction_id": str(transaction.id), "provider": result.reference},
        )
    return await _close(session, transaction, result, source=source)


async def finish_payout(
    session: AsyncSession,
    transaction_id: uuid.UUID,
    result: PaymentResult,
    *,
    source: str = "provider",
) -> Transaction | None:
    """Capture a paid withdrawal's hold (amount out, fee to the platform) or release it."""
    transaction = await _open(session, transaction_id, "withdrawal")
    if transaction is None:
        return None
    if transaction.hold_id is None:  # pragma: no cover - every withdrawal places a hold
        raise LookupError(f"withdrawal {transaction.id} has no hold")
    hold = await holds.get_hold(session, transaction.hold_id)
    if result.status is PaymentStatus.SUCCEEDED:
        await _take_payout(session, transaction, hold_active=hold.status is HoldStatus.ACTIVE)
    elif hold.status is HoldStatus.ACTIVE:
        await holds.release_hold(session, hold.id)
    # A failed payout gives the held money back: the saga compensated.
    return await _close(session, transaction, result, source=source, compensated=True)


async def _take_payout(
    session: AsyncSession, transaction: Transaction, *, hold_active: bool
) -> None:
    external = await ledger.platform_account(
        session, asset=transaction.asset, kind=AccountKind.EXTERNAL
    )
    available = await banking_account(session, transaction.user_id, transaction.asset)
    fee = fee_from_record(transaction)
    reference = f"txn:{transaction.id}"
    if not hold_active:
        # The hold ran out before the provider paid (it was released back to the user): the
        # money left all the same, so it is taken from the available balance in one entry.
        log.warning("payout settled after its hold ended", transaction_id=str(transaction.id))
        await ledger.post_entry(
            session,
            kind="banking.withdrawal",
            postings=[
                (available, -transaction.amount),
                (external, transaction.amount),
                *await fees.fee_postings(session, available, fee),
            ],
            reference=reference,
        )
        return
    # The payout and its fee leave the hold together, in one entry.
    assert transaction.hold_id is not None  # noqa: S101 - checked by the caller
    fee_legs = [
        leg for leg in await fees.fee_postings(session, available, fee) if leg[0].id != available.id
    ]
    await holds.capture_hold(
        session,
        transaction.hold_id,
        destinations=[(external, transaction.amount), *fee_legs],
        release_remainder=True,
        kind="banking.withdrawal",
    )
