"""Accepting money movements: deposits and withdrawals (settled later by jobs); P2P
transfers (complete at once) are in ``transfers``.

Each runs in the request's one transaction: the user's row lock, the limit check, the fee
(a presented quote is used up), the ledger change, the transaction rows, the staged job and
the audit row all commit together or not at all. Nothing here calls a provider.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository
from diboas.banking.errors import AmountTooSmallError
from diboas.banking.repository import NewTransaction
from diboas.banking.schemas import DepositIn, WithdrawalIn
from diboas.banking.service import reversals
from diboas.banking.service.common import (
    DEPOSIT_SETTLE_JOB,
    PAYOUT_JOB,
    Movement,
    banking_account,
    fee_record,
    lock_user,
    own_bank_account,
    parse_usd,
)
from diboas.compliance import audit, limits
from diboas.compliance.audit import AuditContext
from diboas.fees import service as fees
from diboas.kit.ids import uuid7, uuid7_time
from diboas.ledger import holds
from diboas.orchestration import saga
from diboas.orchestration.jobs import stage
from diboas.orchestration.saga import SagaState
from diboas.providers.payments import DEFAULT_CARD
from diboas.settings import Settings


async def _read_back(session: AsyncSession, *ids: uuid.UUID) -> Movement:
    return Movement(tuple(await repository.get_transactions(session, ids)))


async def create_deposit(
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    request: DepositIn,
    context: AuditContext,
) -> Movement:
    """Accept a deposit: pending until the provider confirms (``banking.deposit_settle``)."""
    currency, amount = parse_usd(request.currency, request.amount)
    user = await lock_user(session, user_id)
    if request.bank_account_id is not None:
        await own_bank_account(session, settings, request.bank_account_id, user.id)
    await limits.enforce(session, settings, user, "deposit", amount)
    transaction_id = uuid7()
    fee = await fees.fee_for(
        session,
        user=user,
        operation="deposit",
        amount=amount,
        currency=currency,
        method=request.method,
        quote_id=request.quote_id,
        transaction_id=transaction_id,
    )
    if fee.total >= amount:
        raise AmountTooSmallError(
            "the fee would take the whole deposit",
            details={"amount": str(amount), "fee": str(fee.total)},
        )
    metadata: dict[str, object] = {"fee": fee_record(fee)}
    if request.method == "card":
        # A provider token, not a card number: safe to keep for the settlement job.
        metadata["payment_method"] = request.payment_method or DEFAULT_CARD
    await repository.insert_transactions(
        session,
        [
            NewTransaction(
                id=transaction_id,
                user_id=user.id,
                type="deposit",
                status="pending",
                asset=currency,
                amount=amount,
                fee=fee.total,
                method=request.method,
                provider=fee.provider_name,
                bank_account_id=request.bank_account_id,
                quote_id=request.quote_id,
                metadata=metadata,
            )
        ],
    )
    await saga.advance(
        session,
        transaction_id,
        uuid7_time(transaction_id),
        None,
        SagaState.ACCEPTED,
        method=request.method,
    )
    await stage(session, DEPOSIT_SETTLE_JOB, {"transaction_id": str(transaction_id)})
    await audit.record(
        session,
        context,
        "banking.deposit",
        subject_type="transaction",
        subject_id=transaction_id,
        details={"amount": str(amount), "currency": currency, "method": request.method},
    )
    return await _read_back(session, transaction_id)


async def create_withdrawal(
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    request: WithdrawalIn,
    context: AuditContext,
) -> Movement:
    """Accept a withdrawal: amount + fee are held now, paid out by ``banking.payout``."""
    currency, amount = parse_usd(request.currency, request.amount)
    user = await lock_user(session, user_id)
    await own_bank_account(session, settings, request.bank_account_id, user.id)
    await reversals.ensure_not_frozen(session, user.id, currency)
    await limits.enforce(session, settings, user, "withdrawal", amount)
    transaction_id = uuid7()
    fee = await fees.fee_for(
        session,
        user=user,
        operation="withdrawal",
        amount=amount,
        currency=currency,
        method="ach",
        quote_id=request.quote_id,
        transaction_id=transaction_id,
    )
    available = await banking_account(session, user.id, currency)
    hold = await holds.place_hold(
        session,
        account=available,
        amount=amount + fee.total,
        ttl=timedelta(seconds=settings.hold_default_ttl_seconds),
        reference=f"txn:{transaction_id}",
    )
    await repository.insert_transactions(
        session,
        [
            NewTransaction(
                id=transaction_id,
                user_id=user.id,
                type="withdrawal",
                status="pending",
                asset=currency,
                amount=amount,
                fee=fee.total,
                method="ach",
                provider=fee.provider_name,
                bank_account_id=request.bank_account_id,
                hold_id=hold.id,
                quote_id=request.quote_id,
                metadata={"fee": fee_record(fee)},
            )
        ],
    )
    await saga.advance(
        session,
        transaction_id,
        uuid7_time(transaction_id),
        None,
        SagaState.ACCEPTED,
        hold_id=str(hold.id),
        held=str(amount + fee.total),
    )
    await stage(session, PAYOUT_JOB, {"transaction_id": str(transaction_id)})
    await audit.record(
        session,
        context,
        "banking.withdrawal",
        subject_type="transaction",
        subject_id=transaction_id,
        details={"amount": str(amount), "currency": currency, "hold_id": str(hold.id)},
    )
    return await _read_back(session, transaction_id)
