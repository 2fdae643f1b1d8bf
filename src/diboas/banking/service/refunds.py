"""Card refunds, asked for by support: the money goes back to the card, and the deposit is
reversed (``reversals``) once the provider confirms.

The request is checked and a ``banking.refund`` job is staged in the same transaction; the
job asks the provider with a key of its own (so a retry refunds once) and then posts the
reversal. Only money the customer still has can be refunded this way: a refund is a
courtesy, not a debt — a chargeback is what may leave a customer owing.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository
from diboas.banking.errors import NotReversibleError
from diboas.banking.repository import Transaction
from diboas.banking.schemas import RefundIn
from diboas.banking.service.common import banking_account
from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.kit.errors import InsufficientFundsError, NotFoundError
from diboas.kit.ids import uuid7
from diboas.kit.money import parse_amount
from diboas.ledger import service as ledger
from diboas.orchestration.jobs import stage

REFUND_JOB = "banking.refund"


async def request_refund(
    session: AsyncSession,
    *,
    deposit_id: uuid.UUID,
    request: RefundIn,
    context: AuditContext,
) -> tuple[Transaction, uuid.UUID]:
    """Check a refund and stage it; returns the deposit and the refund's id."""
    deposit = await repository.get_transaction(session, deposit_id, lock=True)
    if deposit is None or deposit.type != "deposit":
        raise NotFoundError("no such deposit", details={"transaction_id": str(deposit_id)})
    if deposit.status != "completed" or deposit.method != "card" or not deposit.provider_reference:
        raise NotReversibleError(
            "only a completed card deposit can be refunded",
            details={"status": deposit.status, "method": deposit.method},
        )
    amount = deposit.amount if request.amount is None else parse_amount(request.amount, 2)
    if amount > deposit.amount:
        raise NotReversibleError(
            "a refund cannot exceed the deposit", details={"amount": str(deposit.amount)}
        )
    available = await banking_account(session, deposit.user_id, deposit.asset)
    have = await ledger.locked_balance(session, available.id)
    if have < amount:
        raise InsufficientFundsError(
            "the customer no longer has this money to refund",
            details={"available": str(have), "requested": str(amount)},
        )
    refund_id = uuid7()
    await stage(
        session,
        REFUND_JOB,
        {
            "refund_id": str(refund_id),
            "deposit_id": str(deposit.id),
            "amount": str(amount),
            "reason": request.reason,
        },
    )
    await audit.record(
        session,
        context,
        "banking.refund.requested",
        subject_type="transaction",
        subject_id=deposit.id,
        details={"refund_id": str(refund_id), "amount": str(amount), "reason": request.reason},
    )
    return deposit, refund_id
