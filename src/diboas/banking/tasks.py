"""Banking's durable jobs: settle a deposit, pay out a withdrawal.

Each job takes a transaction id, calls the payment provider outside any database
transaction with a key derived from that id, and settles in a transaction of its own
(``service.settlement``). Running a job again — a retry, a duplicate delivery, a poll of a
pending payment — charges nothing twice and posts nothing twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking.repository import Transaction
from diboas.banking.service import DEPOSIT_SETTLE_JOB, PAYOUT_JOB, count_status, settlement
from diboas.banking.service.settlement import ProviderCall
from diboas.db.transactions import run_in_transaction
from diboas.orchestration.jobs import JobContext, job
from diboas.providers.payments import (
    PaymentError,
    PaymentProvider,
    PaymentResult,
    PaymentStatus,
    payment_provider,
)

log = structlog.get_logger(__name__)

Finish = Callable[..., Awaitable[Transaction | None]]
# The reconciliation job (orchestration.reconciliation) asks the provider about parked sagas.
RECONCILE_JOB = "orchestration.reconcile_payment"


def payments(context: JobContext, method: str | None) -> PaymentProvider:
    """The payment provider for a method (tests may hand one in as a service for all)."""
    provider: PaymentProvider = context.services.get("payments") or payment_provider(
        context.settings, method=method
    )
    return provider


@job(DEPOSIT_SETTLE_JOB, max_attempts=10)
async def deposit_settle(context: JobContext, payload: dict[str, Any]) -> None:
    """Charge the card or debit the bank account, then credit the deposit (or fail it)."""
    await _settle(context, uuid.UUID(payload["transaction_id"]), "deposit")


@job(PAYOUT_JOB, max_attempts=10)
async def payout(context: JobContext, payload: dict[str, Any]) -> None:
    """Pay a withdrawal out to the bank account, then capture its hold (or release it)."""
    await _settle(context, uuid.UUID(payload["transaction_id"]), "withdrawal")


async def _settle(context: JobContext, transaction_id: uuid.UUID, kind: str) -> None:
    retries = context.settings.db_max_retries
    chosen: dict[str | None, PaymentProvider] = {}

    def provider_for(method: str | None) -> PaymentProvider:
        if method not in chosen:
            chosen[method] = payments(context, method)
        return chosen[method]

    async def begin(session: AsyncSession) -> ProviderCall | None:
        return await settlement.begin(
            session,
            context.settings,
            transaction_id,
            expected_type=kind,
            provider=lambda transaction: provider_for(transaction.method).name,
        )

    call = await run_in_transaction(context.sessions, begin, max_retries=retries)
    if call is None:
        return  # already settled: a repeated delivery
    provider = provider_for(call.transaction.method)
    try:
        await _settle_with(context, provider, call)
    finally:
        # Close the connections of a provider made for this job (not one the app shares).
        close = getattr(provider, "aclose", None)
        if close is not None and provider is not context.services.get("payments"):
            await close()


async def _settle_with(context: JobContext, provider: PaymentProvider, call: ProviderCall) -> None:
    if call.started:
        count_status(call.transaction)
    try:
        result = await _call(provider, call)
    except PaymentError as exc:
        outcome = await _provider_failed(context, call, exc)
        if outcome is None:
            return  # parked for reconciliation
        result = outcome
    await settle_with_result(context, provider, call.transaction, result, source="provider")


async def _provider_failed(
    context: JobContext, call: ProviderCall, exc: PaymentError
) -> PaymentResult | None:
    """What a failed provider call means for the saga: parked (None), retried (raises) or a
    final refusal (a failed result)."""
    transaction = call.transaction
    retries = context.settings.db_max_retries
    reason = f"{type(exc).__name__}: {exc}"[:300]
    if exc.ambiguous:
        # The provider may have acted: never send again blindly; ask it (reconciliation).
        delay = timedelta(seconds=context.settings.saga_reconcile_delay_seconds)
        await run_in_transaction(
            context.sessions,
            lambda s: settlement.park(
                s, transaction.id, reason=reason, reconcile_after=delay, job=RECONCILE_JOB
            ),
            max_retries=retries,
        )
        log.warning("provider outcome unknown: parked", transaction_id=str(transaction.id))
        return None
    if exc.retryable:
        await run_in_transaction(
            context.sessions,
            lambda s: settlement.note_retry(
                s, transaction.id, reason=reason, attempt=context.attempt
            ),
            max_retries=retries,
        )
        raise exc  # the job is retried with backoff, then parked as failed for operators
    log.warning("payment refused by the provider", transaction_id=str(transaction.id))
    return PaymentResult(
        reference=transaction.provider_reference or "",
        status=PaymentStatus.FAILED,
        amount=transaction.amount,
        currency=transaction.asset,
        failure_code="provider_error",
        failure_message=str(exc),
    )


async def settle_with_result(
    context: JobContext,
    provider: PaymentProvider,
    transaction: Transaction,
    result: PaymentResult,
    *,
    source: str,
) -> None:
    """Act on the provider's answer about a transaction: wait for a pending payment (asking
    again later), or settle the ledger, once."""
    retries = context.settings.db_max_retries
    name = DEPOSIT_SETTLE_JOB if transaction.type == "deposit" else PAYOUT_JOB
    if result.status is PaymentStatus.PENDING and _waited_too_long(context, transaction, result):
        # The customer never authenticated: the payment is abandoned, not left open forever.
        try:
            result = await provider.cancel(result.reference)
            log.info("payment abandoned by the customer", transaction_id=str(transaction.id))
        except PaymentError as exc:
            if exc.retryable:
                raise
            # It moved on meanwhile (authenticated at the last moment): take it as it is now.
            result = await provider.status(result.reference)
    if result.status is PaymentStatus.PENDING:

        async def wait(session: AsyncSession) -> None:
            await settlement.record_pending(
                session, transaction.id, result, job=name, poll_after=provider.poll_interval
            )

        await run_in_transaction(context.sessions, wait, max_retries=retries)
        log.info("payment pending", transaction_id=str(transaction.id), kind=transaction.type)
        return
    finish: Finish = (
        settlement.finish_deposit if transaction.type == "deposit" else settlement.finish_payout
    )
    closed = await run_in_transaction(
        context.sessions,
        lambda s: finish(s, transaction.id, result, source=source),
        max_retries=retries,
    )
    if closed is not None:
        count_status(closed)
        log.info(
            "payment settled",
            transaction_id=str(transaction.id),
            kind=transaction.type,
            status=closed.status,
            failure_code=closed.failure_code,
        )


def _waited_too_long(context: JobContext, transaction: Transaction, result: PaymentResult) -> bool:
    if result.failure_code != "requires_action":
        return False
    waited = datetime.now(UTC) - transaction.created_at
    return waited.total_seconds() > context.settings.saga_customer_action_timeout_seconds


async def _call(provider: PaymentProvider, call: ProviderCall) -> PaymentResult:
    transaction = call.transaction
    if transaction.provider_reference is not None:
        return await provider.status(transaction.provider_reference)
    if transaction.type == "deposit":
        source = call.card if call.card is not None else call.bank
        if source is None:  # pragma: no cover - a deposit has a card or a bank account
            raise LookupError(f"deposit {transaction.id} has no payment source")
        return await provider.charge(
            amount=transaction.amount,
            currency=transaction.asset,
            source=source,
            idempotency_key=call.idempotency_key,
        )
    if call.bank is None:  # pragma: no cover - a withdrawal always names its account
        raise LookupError(f"withdrawal {transaction.id} has no bank account")
    return await provider.payout(
        amount=transaction.amount,
        currency=transaction.asset,
        destination=call.bank,
        idempotency_key=call.idempotency_key,
    )
