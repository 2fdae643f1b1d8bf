"""Deposit-and-invest in one request: the investment is paid by a card or ACH deposit made
in the same transaction as the investment is accepted.

The saga of the ``defi_deposit`` moves at once to ``provider_requested`` for its funding
deposit (a banking saga of its own, settled by ``banking.deposit_settle``). The job
``defi.fund_investment`` waits for it (staged again every ``DIBOAS_DEFI_FUNDING_POLL_SECONDS``):

- deposit completed: amount + fee + gas are held from the banking balance it credited, the
  position joins the next batch (the saga records the funding, ``provider_requested`` again)
  and the batch goes on as for any investment;
- deposit failed: nothing was held, nothing moved; the investment fails with
  ``funding_failed``;
- the deposited money is no longer there (spent in between): the investment fails with
  ``funding_spent``; the deposit itself stands — it is the customer's money, in banking.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository as transactions
from diboas.banking.repository import Transaction
from diboas.banking.schemas import DepositIn
from diboas.banking.service import create_deposit
from diboas.banking.service.common import banking_account
from diboas.compliance.audit import AuditContext
from diboas.defi import repository
from diboas.defi.schemas import FundingIn
from diboas.fees import service as fees
from diboas.identity.repository import User
from diboas.kit.errors import InsufficientFundsError
from diboas.ledger import holds
from diboas.orchestration import saga
from diboas.orchestration.jobs import stage
from diboas.orchestration.saga import SagaState
from diboas.settings import Settings

FUND_JOB = "defi.fund_investment"
DEPOSIT_BATCH_JOB = "defi.deposit_batch"


async def gross_up(session: AsyncSession, user: User, needed: Decimal, method: str) -> Decimal:
    """The deposit that, less its own fee, leaves at least ``needed``."""
    amount = needed
    for _ in range(20):  # percentage fees: each round closes the gap ~30 times over
        fee = await fees.compute(
            session,
            operation="deposit",
            amount=amount,
            currency="USD",
            method=method,
            tier=user.kyc_tier,
        )
        short = needed - (amount - fee.total)
        if short <= 0:
            return amount
        amount += short
    return amount


async def request_deposit(
    session: AsyncSession,
    settings: Settings,
    *,
    user: User,
    needed: Decimal,
    funding: FundingIn,
    context: AuditContext,
) -> Transaction:
    """Accept the funding deposit (a banking deposit like any other: limits, fee, saga)."""
    amount = await gross_up(session, user, needed, funding.method)
    movement = await create_deposit(
        session,
        settings,
        user_id=user.id,
        request=DepositIn(
            amount=str(amount),
            currency="USD",
            method=funding.method,
            payment_method=funding.payment_method,
            bank_account_id=funding.bank_account_id,
        ),
        context=context,
    )
    return movement.primary


async def _fail(
    session: AsyncSession, transaction: Transaction, position_id: uuid.UUID, code: str, reason: str
) -> None:
    await repository.update_position(session, position_id, status="failed")
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        transaction.saga_state,
        SagaState.FAILED,
        failure_code=code,
        reason=reason,
    )
    await transactions.set_status(
        session, transaction, "failed", failure_code=code, failure_reason=reason
    )


async def fund(session: AsyncSession, settings: Settings, transaction_id: uuid.UUID) -> str:
    """One look at a funded investment's deposit (see the module docstring); the outcome."""
    transaction = await transactions.get_transaction(session, transaction_id, lock=True)
    if transaction is None or transaction.final or transaction.hold_id is not None:
        return "done"  # unknown, finished, or funded already (a repeated delivery)
    position_id = uuid.UUID(str(transaction.metadata["position_id"]))
    deposit = await transactions.get_transaction(
        session, uuid.UUID(str(transaction.metadata["funding_transaction_id"]))
    )
    if deposit is None or deposit.status == "failed":
        code = None if deposit is None else deposit.failure_code
        await _fail(session, transaction, position_id, "funding_failed", f"deposit failed: {code}")
        return "failed"
    if deposit.status != "completed":
        delay = timedelta(seconds=settings.defi_funding_poll_seconds)
        await stage(session, FUND_JOB, {"transaction_id": str(transaction.id)}, delay=delay)
        return "waiting"
    needed = transaction.amount + transaction.fee
    try:
        async with session.begin_nested():  # a refusal rolls back only the attempt
            hold = await holds.place_hold(
                session,
                account=await banking_account(session, transaction.user_id, "USD"),
                amount=needed,
                ttl=timedelta(seconds=settings.hold_default_ttl_seconds),
                reference=f"txn:{transaction.id}",
            )
    except InsufficientFundsError:
        await _fail(
            session, transaction, position_id, "funding_spent", "the deposited money was spent"
        )
        return "failed"
    await repository.set_transaction_hold(session, transaction.id, transaction.created_at, hold.id)
    await repository.update_position(session, position_id, status="pending")
    await saga.advance(
        session,
        transaction.id,
        transaction.created_at,
        transaction.saga_state,
        SagaState.PROVIDER_REQUESTED,
        funded_by=str(deposit.id),
        hold_id=str(hold.id),
        held=str(needed),
    )
    strategy_id = str(transaction.metadata["strategy_id"])
    await stage(session, DEPOSIT_BATCH_JOB, {"strategy_id": strategy_id})
    return "funded"
