"""Investing into a strategy and withdrawing from a position, as accepted in the request.

The money is its owner's (``defi.owners``): a user's own, or an organisation's treasury that
one of its admins moves (the admin is the actor: their row is locked, their identity checks
apply, the transaction row is theirs and pollable by them; the hold, the position, the risk
profile and the audit rows follow the organisation).

Both are sagas (``orchestration.saga``). Nothing here calls the vault: the caller estimated
the gas before (``VaultProtocol.estimate_gas``, priced in USD) and hands in the figures; the
vault is acted on by jobs (``settlement``). Each runs in the request's one transaction: the
user's row lock, the risk rule, the fee, the hold, the transaction row, the position, the
first saga step, the staged job and the audit rows commit together or not at all.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository as transactions
from diboas.banking.repository import NewTransaction, Transaction
from diboas.banking.service import reversals
from diboas.banking.service.common import fee_record, lock_user
from diboas.compliance import limits
from diboas.compliance.audit import AuditContext
from diboas.defi import repository
from diboas.defi.errors import (
    BelowMinimumError,
    ExceedsPositionError,
    FeeExceedsAmountError,
    PositionLockedError,
    PositionNotFoundError,
    PositionNotOpenError,
)
from diboas.defi.owners import Owner
from diboas.defi.repository import Position, Strategy
from diboas.defi.schemas import FundingIn
from diboas.defi.service.accounts import cash_account, record
from diboas.defi.service.catalog import check_risk
from diboas.defi.service.funding import DEPOSIT_BATCH_JOB, FUND_JOB, request_deposit
from diboas.fees import service as fees
from diboas.fees.service import FeeBreakdown
from diboas.identity.repository import User
from diboas.kit.ids import uuid7, uuid7_time
from diboas.kit.money import parse_amount, quantum
from diboas.ledger import holds
from diboas.orchestration import saga
from diboas.orchestration.jobs import stage
from diboas.orchestration.saga import SagaState
from diboas.settings import Settings

WITHDRAW_JOB = "defi.withdraw"
CURRENCY = "USD"


@dataclass(frozen=True, slots=True)
class Accepted:
    """A DeFi movement as accepted: its transaction and position."""

    transaction: Transaction
    position_id: uuid.UUID


async def _fee(
    session: AsyncSession,
    user: User,
    owner: Owner,
    operation: str,
    amount: Decimal,
    gas_usd: Decimal,
    vault: str,
) -> FeeBreakdown:
    # An organisation has no KYC tier: the schedule's rows for every tier apply to it.
    tier = None if owner.is_organisation else user.kyc_tier
    schedule = await fees.compute(
        session, operation=operation, amount=amount, currency=CURRENCY, tier=tier
    )
    # The network component is the gas estimated for the vault transaction, in USD.
    return FeeBreakdown(CURRENCY, schedule.platform, schedule.provider, gas_usd, vault)


def _ensure_verified(settings: Settings, user: User) -> None:
    """Investing moves money: the same identity rules as banking (verified email where the
    platform requires it, KYC tier 1 or more). DeFi has no amount limits of its own yet."""
    if settings.email_verification_required and user.email_verified_at is None:
        raise limits.EmailVerificationRequiredError("verify your email address before investing")
    if not limits.limits_for(settings, user.kyc_tier):
        raise limits.KycRequiredError(
            "complete identity verification (KYC) before investing",
            details={"kyc_tier": user.kyc_tier},
        )


async def invest(
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    strategy: Strategy,
    amount_text: str,
    acknowledge_risk: bool,
    gas_usd: Decimal,
    vault_name: str,
    context: AuditContext,
    funding: FundingIn | None = None,
    owner: Owner | None = None,
) -> Accepted:
    """Accept an investment: amount + fee + estimated gas held from the owner's banking USD
    (or, for a user with ``funding``, a deposit requested that will pay for it:
    ``service.funding``); the deposit into the vault waits for the strategy's next batch
    (``defi.deposit_batch``). ``user_id`` acts; ``owner`` is whose money it is (the user's
    own when None, or an organisation's treasury)."""
    owner = owner or Owner.user(user_id)
    if owner.is_organisation and funding is not None:
        raise ValueError("an organisation's investment is paid from its treasury")
    amount = parse_amount(amount_text, 2)
    if amount < strategy.min_amount:
        raise BelowMinimumError(
            f"this strategy takes at least {strategy.min_amount} USD",
            details={"strategy_id": strategy.id, "min_amount": str(strategy.min_amount)},
        )
    user = await lock_user(session, user_id)
    _ensure_verified(settings, user)
    if not owner.is_organisation:  # only a person's money can be owed after a reversal
        await reversals.ensure_not_frozen(session, user.id, CURRENCY)
    max_risk = await repository.get_risk_profile(session, owner)
    limit, acknowledged = check_risk(strategy, max_risk, acknowledged=acknowledge_risk)
    transaction_id, position_id = uuid7(), uuid.uuid4()
    fee = await _fee(session, user, owner, "defi_deposit", amount, gas_usd, vault_name)
    hold_id: uuid.UUID | None = None
    extra: dict[str, str] = {}
    if owner.is_organisation:
        extra["organisation_id"] = str(owner.id)
    if funding is None:
        hold = await holds.place_hold(
            session,
            account=await cash_account(session, owner, CURRENCY),
            amount=amount + fee.total,
            ttl=timedelta(seconds=settings.hold_default_ttl_seconds),
            reference=f"txn:{transaction_id}",
        )
        hold_id = hold.id
    else:
        deposit = await request_deposit(
            session,
            settings,
            user=user,
            needed=amount + fee.total,
            funding=funding,
            context=context,
        )
        extra = {"funding_transaction_id": str(deposit.id), "funding_amount": str(deposit.amount)}
    funding_extra = dict(extra)
    await transactions.insert_transactions(
        session,
        [
            NewTransaction(
                id=transaction_id,
                user_id=user.id,
                type="defi_deposit",
                status="pending",
                domain="defi",
                asset=CURRENCY,
                amount=amount,
                fee=fee.total,
                provider=vault_name,
                hold_id=hold_id,
                description=strategy.name,
                metadata={
                    "fee": fee_record(fee),
                    "strategy_id": strategy.id,
                    "position_id": str(position_id),
                    "gas_estimate_usd": str(gas_usd),
                    **extra,
                },
            )
        ],
    )
    # The strategy's asset is a USD stablecoin taken at par: the principal is the amount.
    principal = amount.quantize(quantum(strategy.scale))
    await repository.insert_position(
        session,
        position_id=position_id,
        owner=owner,
        strategy=strategy,
        principal=principal,
        transaction_id=transaction_id,
        status="pending" if funding is None else "funding",
    )
    created_at = uuid7_time(transaction_id)
    await saga.advance(
        session,
        transaction_id,
        created_at,
        None,
        SagaState.ACCEPTED,
        hold_id=str(hold_id) if hold_id else None,
        held=str(amount + fee.total) if hold_id else None,
        position_id=str(position_id),
    )
    if funding is None:
        await stage(
            session,
            DEPOSIT_BATCH_JOB,
            {"strategy_id": strategy.id},
            delay=timedelta(seconds=settings.defi_batch_window_seconds),
        )
    else:
        # The funding deposit is this saga's first provider request.
        await saga.advance(
            session,
            transaction_id,
            created_at,
            SagaState.ACCEPTED.value,
            SagaState.PROVIDER_REQUESTED,
            funding=funding_extra["funding_transaction_id"],
            deposit=funding_extra["funding_amount"],
        )
        await stage(session, FUND_JOB, {"transaction_id": str(transaction_id)})
    if acknowledged:
        await record(
            session,
            context,
            owner,
            "defi.risk_acknowledged",
            transaction_id,
            details={
                "strategy_id": strategy.id,
                "risk_score": strategy.risk_score,
                "max_risk_score": limit,
            },
        )
    await record(
        session,
        context,
        owner,
        "defi.deposit",
        transaction_id,
        details={"amount": str(amount), "strategy_id": strategy.id, **extra},
    )
    found = await transactions.get_transaction(session, transaction_id)
    assert found is not None  # noqa: S101 - just written
    return Accepted(found, position_id)


@dataclass(frozen=True, slots=True)
class WithdrawalPlan:
    """What a withdrawal redeems, worked out from the vault before the transaction: the
    shares, the USD it is expected to pay, and the gas estimate in USD."""

    shares: Decimal
    expected: Decimal
    gas_usd: Decimal


def portion(total: Decimal, part: Decimal, whole: Decimal, scale: int) -> Decimal:
    """``total`` × part / whole, rounded down to ``scale`` (all of it when part is whole)."""
    if part == whole:
        return total
    return (total * part / whole).quantize(quantum(scale), rounding=ROUND_DOWN)


async def _check_open(session: AsyncSession, position: Position) -> None:
    if position.status != "open" or position.free_shares <= 0:
        raise PositionNotOpenError(
            "this position cannot be withdrawn from now",
            details={"position_id": str(position.id), "status": position.status},
        )
    locked = (
        await session.execute(text("SELECT now() < :until"), {"until": position.locked_until})
    ).scalar_one()
    if locked:
        raise PositionLockedError(
            "this position is in its lock-up period",
            details={"position_id": str(position.id), "locked_until": str(position.locked_until)},
        )


async def own_position(
    session: AsyncSession, position_id: uuid.UUID, owner: Owner, *, lock: bool = False
) -> Position:
    """The owner's position, or 404 (another owner's too)."""
    position = await repository.get_position(session, position_id, owner=owner, lock=lock)
    if position is None:
        raise PositionNotFoundError("no such position", details={"position_id": str(position_id)})
    return position


async def check_withdrawable(session: AsyncSession, position: Position) -> None:
    """Refuse a position that is not open or still locked (checked again under its lock)."""
    await _check_open(session, position)


async def withdraw(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    position_id: uuid.UUID,
    plan: WithdrawalPlan,
    whole: bool,
    context: AuditContext,
    owner: Owner | None = None,
) -> Accepted:
    """Accept a withdrawal: the shares are set aside on the position, and ``defi.withdraw``
    redeems them; the USD (less fee and gas) reaches the owner's banking account (an
    organisation's treasury) when the vault has paid. ``user_id`` acts; ``owner`` is whose
    position it is (the user's own when None)."""
    owner = owner or Owner.user(user_id)
    user = await lock_user(session, user_id)
    position = await own_position(session, position_id, owner, lock=True)
    await _check_open(session, position)
    shares = position.free_shares if whole else plan.shares
    if shares > position.free_shares:
        raise ExceedsPositionError(
            "the position is worth less than that",
            details={"position_id": str(position.id), "shares": str(position.free_shares)},
        )
    fee = await _fee(session, user, owner, "defi_withdraw", plan.expected, plan.gas_usd, "vault")
    if fee.total >= plan.expected:
        raise FeeExceedsAmountError(
            "the fee and gas would take the whole withdrawal",
            details={"amount": str(plan.expected), "fee": str(fee.total)},
        )
    strategy = await repository.get_strategy(session, position.strategy_id)
    scale = 6 if strategy is None else strategy.scale
    booked = portion(position.booked_value, shares, position.shares, scale)
    principal = portion(position.principal, shares, position.shares, scale)
    transaction_id = uuid7()
    await transactions.insert_transactions(
        session,
        [
            NewTransaction(
                id=transaction_id,
                user_id=user.id,
                type="defi_withdraw",
                status="pending",
                domain="defi",
                asset=CURRENCY,
                amount=plan.expected,
                fee=fee.total,
                provider="vault",
                description=position.strategy_id,
                metadata={
                    "fee": fee_record(fee),
                    "strategy_id": position.strategy_id,
                    "position_id": str(position.id),
                    "shares": str(shares),
                    "gas_estimate_usd": str(plan.gas_usd),
                    **({"organisation_id": str(owner.id)} if owner.is_organisation else {}),
                },
            )
        ],
    )
    await repository.insert_withdrawal(
        session,
        transaction_id=transaction_id,
        position_id=position.id,
        shares=shares,
        booked_value=booked,
        principal=principal,
    )
    await repository.update_position(
        session, position.id, withdrawing_shares=position.withdrawing_shares + shares
    )
    await saga.advance(
        session,
        transaction_id,
        uuid7_time(transaction_id),
        None,
        SagaState.ACCEPTED,
        position_id=str(position.id),
        shares=str(shares),
    )
    await stage(session, WITHDRAW_JOB, {"transaction_id": str(transaction_id)})
    await record(
        session,
        context,
        owner,
        "defi.withdraw",
        transaction_id,
        details={"position_id": str(position.id), "shares": str(shares), "whole": whole},
    )
    found = await transactions.get_transaction(session, transaction_id)
    assert found is not None  # noqa: S101 - just written
    return Accepted(found, position.id)
