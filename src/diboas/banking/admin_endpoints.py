"""Support's banking operations: refunding a card deposit."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from diboas.api.deps import DatabaseDep
from diboas.banking import refunds as _refunds  # noqa: F401 - registers the job it stages
from diboas.banking.schemas import RefundIn
from diboas.banking.service import refunds
from diboas.compliance import audit
from diboas.identity.dependencies import CurrentCaller, requires

router = APIRouter(tags=["banking"])


@router.post(
    "/admin/transactions/{transaction_id}/refund",
    status_code=202,
    dependencies=[requires("payments:refund")],
    summary="Refund a completed card deposit to the card (all of it or part)",
)
async def refund_deposit(
    transaction_id: uuid.UUID,
    body: RefundIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
) -> dict[str, str]:
    context = audit.request_context(request, caller.user)
    deposit, refund_id = await db.run(
        lambda s: refunds.request_refund(
            s, deposit_id=transaction_id, request=body, context=context
        )
    )
    return {"refund_id": str(refund_id), "transaction_id": str(deposit.id), "status": "pending"}
