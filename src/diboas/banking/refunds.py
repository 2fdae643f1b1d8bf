"""The refund job: ask the payment provider to refund, then reverse the deposit once."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository
from diboas.banking.repository import Transaction
from diboas.banking.service import reversals
from diboas.banking.service.refunds import REFUND_JOB
from diboas.banking.service.reversals import Reversal
from diboas.banking.tasks import payments
from diboas.db.transactions import run_in_transaction
from diboas.orchestration.jobs import JobContext, job
from diboas.providers.payments import PaymentStatus

log = structlog.get_logger(__name__)


@job(REFUND_JOB, max_attempts=10)
async def refund(context: JobContext, payload: dict[str, Any]) -> None:
    """Refund at the provider (its key is the refund's id: a retry refunds once), then post
    the reversal (its entry carries the provider's refund id: posted once)."""
    deposit_id = uuid.UUID(payload["deposit_id"])
    amount = Decimal(payload["amount"])

    async def read(session: AsyncSession) -> Transaction | None:
        return await repository.get_transaction(session, deposit_id)

    deposit = await run_in_transaction(context.sessions, read)
    if deposit is None or deposit.provider_reference is None:
        log.error("refund of an unknown deposit", deposit_id=str(deposit_id))
        return
    provider = payments(context, deposit.method)
    try:
        # Errors propagate: retryable ones are tried again by the job (same key), others
        # end in the dead letter for an operator, with the deposit untouched.
        result = await provider.refund(
            reference=deposit.provider_reference,
            amount=amount,
            currency=deposit.asset,
            idempotency_key=f"diboas:refund:{payload['refund_id']}",
        )
    finally:
        close = getattr(provider, "aclose", None)
        if close is not None and provider is not context.services.get("payments"):
            await close()
    if result.status is not PaymentStatus.SUCCEEDED:
        raise RuntimeError(f"refund {result.reference} is {result.status}: asked again later")
    reversal = Reversal(
        deposit_id=deposit_id,
        amount=amount,
        reference=result.reference,
        reason_code="refund",
        reason=str(payload.get("reason") or "Refunded"),
    )
    await run_in_transaction(
        context.sessions,
        lambda s: reversals.reverse_deposit(s, reversal),
        max_retries=context.settings.db_max_retries,
    )
    log.info("deposit refunded", deposit_id=str(deposit_id), refund=result.reference)
