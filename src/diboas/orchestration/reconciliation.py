"""Reconciliation: settling sagas whose provider call ended without an answer.

A request that timed out, lost its connection after sending, or met a 5xx may or may not have
been acted on by the provider. Sending it again blindly could be safe (the key is the same)
or not (keys expire at the provider), so the saga is parked as ``ambiguous`` and this job
asks the provider what became of the request, by its idempotency key:

- the provider has the payment: the saga goes on from that answer (settled, failed, or
  waiting), exactly as if the answer had arrived in time;
- the provider never received it: the request is sent again, with the same key;
- the provider cannot be reached: the job asks again later, backing off (doubling, up to
  ``DIBOAS_SAGA_RECONCILE_MAX_DELAY_SECONDS``); the saga stays parked and visible meanwhile.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import structlog

from diboas.banking.service import DEPOSIT_SETTLE_JOB, PAYOUT_JOB, settlement
from diboas.banking.tasks import RECONCILE_JOB, payments, settle_with_result
from diboas.db.transactions import run_in_transaction
from diboas.orchestration.jobs import JobContext, job
from diboas.providers.payments import PaymentError, PaymentResult

log = structlog.get_logger(__name__)


@job(RECONCILE_JOB, max_attempts=10)
async def reconcile_payment(context: JobContext, payload: dict[str, Any]) -> None:
    """Ask the provider about one parked transaction and carry its saga on."""
    transaction_id = uuid.UUID(payload["transaction_id"])
    round_ = int(payload.get("round", 0))
    retries = context.settings.db_max_retries
    transaction = await run_in_transaction(
        context.sessions, lambda s: settlement.parked(s, transaction_id), max_retries=retries
    )
    if transaction is None:
        return  # settled meanwhile (a webhook, say), or never parked
    provider = payments(context, transaction.method)
    try:
        found: PaymentResult | None = await provider.lookup(
            settlement.provider_key(transaction), since=transaction.created_at
        )
    except PaymentError as exc:
        if not exc.retryable:
            raise  # a misconfiguration: the job's retries, then the dead letter, show it
        reason = f"asking the provider failed: {exc}"[:300]
        delay = min(
            context.settings.saga_reconcile_delay_seconds * 2 ** (round_ + 1),
            context.settings.saga_reconcile_max_delay_seconds,
        )
        await run_in_transaction(
            context.sessions,
            lambda s: settlement.park(
                s,
                transaction_id,
                reason=reason,
                reconcile_after=timedelta(seconds=delay),
                job=RECONCILE_JOB,
                payload={"round": round_ + 1},
            ),
            max_retries=retries,
        )
        log.warning("provider unreachable for reconciliation", transaction_id=str(transaction_id))
        return
    finally:
        close = getattr(provider, "aclose", None)
        if close is not None and provider is not context.services.get("payments"):
            await close()
    if found is None or found.failure_code == "requires_confirmation":
        # Never received, or received only in part: the same request again (same key) is
        # exactly what the provider needs, and cannot pay twice.
        resend_job = DEPOSIT_SETTLE_JOB if transaction.type == "deposit" else PAYOUT_JOB
        await run_in_transaction(
            context.sessions,
            lambda s: settlement.resend(s, transaction_id, job=resend_job),
            max_retries=retries,
        )
        log.info(
            "parked request unknown to the provider: resent", transaction_id=str(transaction_id)
        )
        return
    log.info("parked request found at the provider", transaction_id=str(transaction_id))
    await settle_with_result(context, provider, transaction, found, source="reconciliation")
