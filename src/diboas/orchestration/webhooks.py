"""Provider webhooks: verified by signature, processed idempotently.

A dispute (chargeback) reverses the deposit it names (``banking.service.reversals``), once;
a dispute won (its funds reinstated) gives the customer back what the chargeback took, once.

``POST /api/v1/webhooks/stripe``: Stripe signs each event with the endpoint's secret; an event
that fails verification is refused (400) and changes nothing. A PaymentIntent that succeeded or
failed settles its deposit at once — through the same settlement the polling job uses, which
checks the transaction's status under its row lock and the ledger entry's reference, so an
event delivered twice, or after the job settled, credits nothing more; an event about a
payment we do not know yet (it may beat the job that records the reference) is left to that
job's polling.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.banking import repository
from diboas.banking.service import reversals, settlement
from diboas.banking.service.reversals import Reversal
from diboas.identity.dependencies import public
from diboas.kit.errors import DomainError
from diboas.providers.payments import PaymentError, PaymentResult, PaymentStatus
from diboas.providers.stripe_payments import Dispute, StripeError, StripePayments

log = structlog.get_logger(__name__)
router = APIRouter(tags=["webhooks"])

_SETTLING = frozenset(
    {"payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled"}
)


# The cardholder's bank takes the money when a dispute opens (funds_withdrawn follows
# created; both name the dispute, which is reversed once).
_DISPUTED = frozenset({"charge.dispute.created", "charge.dispute.funds_withdrawn"})
# The money comes back when the platform wins: funds_reinstated, or closed with "won" (either
# may arrive first; both name the dispute, which is reinstated once).
_REINSTATED = "charge.dispute.funds_reinstated"
_CLOSED = "charge.dispute.closed"


class WebhookRefusedError(DomainError):
    """The webhook could not be verified."""

    status_code = 400
    code = "webhook_refused"


class WebhookDeferredError(DomainError):
    """The event could not be acted on now; its sender retries it."""

    status_code = 503
    code = "provider_unavailable"


class WebhooksNotConfiguredError(DomainError):
    """No webhook secret is configured for this provider."""

    status_code = 404
    code = "not_found"


@router.post("/webhooks/stripe", dependencies=[public()], summary="Stripe events (signed)")
async def stripe_webhook(
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    stripe_signature: str = Header(default=""),
) -> JSONResponse:
    if settings.stripe_webhook_secret is None or settings.stripe_api_key is None:
        raise WebhooksNotConfiguredError("no Stripe webhook endpoint is configured")
    verifier = StripePayments(
        api_key=settings.stripe_api_key.get_secret_value(),
        api_base=settings.stripe_api_base,
        webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
    )
    try:
        try:
            event = verifier.verify_webhook(await request.body(), stripe_signature)
        except StripeError as exc:
            log.warning("stripe webhook refused", reason=exc.code)
            raise WebhookRefusedError(
                "the webhook could not be verified", details={"reason": exc.code}
            ) from exc
        outcome = "ignored"
        dispute = event.dispute
        won = event.type == _REINSTATED or (event.type == _CLOSED and _won(dispute))
        if event.type in _DISPUTED and dispute is not None:
            outcome = await db.run(lambda s: _charge_back(s, dispute))
        elif won and dispute is not None:
            outcome = await db.run(lambda s: _reinstate(s, dispute))
        elif event.type in _SETTLING:
            # Events arrive late, twice and out of order: act on the payment as Stripe has it
            # now, not on the event's snapshot of it (a stale "failed" after a success, say).
            try:
                payment = await verifier.status(event.object_id)
            except PaymentError as exc:
                # Not acknowledged: Stripe delivers the event again later.
                raise WebhookDeferredError(
                    "Stripe could not be asked about the payment",
                    details={"reason": getattr(exc, "code", "provider_error")},
                ) from exc
            if payment.status is not PaymentStatus.PENDING:
                outcome = await db.run(lambda s: _settle(s, payment, event.id))
    finally:
        await verifier.aclose()
    log.info("stripe webhook", event_id=event.id, event_type=event.type, outcome=outcome)
    return JSONResponse({"received": True, "outcome": outcome})


async def _settle(session: AsyncSession, payment: PaymentResult, event_id: str) -> str:
    transaction_id = await repository.transaction_id_for_provider_reference(
        session, "stripe", payment.reference
    )
    if transaction_id is None:
        return "unknown_payment"  # the job that made it will learn the outcome itself
    transaction = await repository.get_transaction(session, transaction_id)
    if transaction is None or transaction.type != "deposit":
        return "ignored"
    if payment.amount != transaction.amount or payment.currency != transaction.asset:
        log.error("stripe amount differs from the deposit", transaction_id=str(transaction_id))
        return "amount_mismatch"
    closed = await settlement.finish_deposit(
        session, transaction_id, payment, source=f"webhook:{event_id}"
    )
    return "settled" if closed is not None else "already_settled"


def _won(dispute: Dispute | None) -> bool:
    return dispute is not None and dispute.status == "won"


async def _reinstate(session: AsyncSession, dispute: Dispute) -> str:
    deposit_id = await repository.transaction_id_for_provider_reference(
        session, "stripe", dispute.payment_reference
    )
    if deposit_id is None:
        return "unknown_payment"
    done = await reversals.reinstate(
        session,
        deposit_id,
        dispute.id,
        "Chargeback won back: the card payment stands and its money is yours again.",
    )
    return "reinstated" if done is not None else "nothing_to_reinstate"


async def _charge_back(session: AsyncSession, dispute: Dispute) -> str:
    deposit_id = await repository.transaction_id_for_provider_reference(
        session, "stripe", dispute.payment_reference
    )
    if deposit_id is None:
        return "unknown_payment"
    done = await reversals.reverse_deposit(
        session,
        Reversal(
            deposit_id=deposit_id,
            amount=dispute.amount,
            reference=dispute.id,
            reason_code="chargeback",
            reason=f"Card payment disputed by the cardholder ({dispute.reason}).",
        ),
    )
    return "reversed" if done is not None else "already_reversed"
