"""What banking's services share: job names, the dollar check, fee records, user locks,
bank-account secrets, response views and metrics."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository
from diboas.banking.errors import BankAccountNotFoundError, UnsupportedCurrencyError
from diboas.banking.repository import BankAccount, Transaction
from diboas.banking.schemas import (
    BankAccountOut,
    ChainDepositOut,
    SagaStepOut,
    TransactionOut,
)
from diboas.fees.service import FeeBreakdown
from diboas.identity import repository as users
from diboas.identity.repository import User
from diboas.kit.crypto import KeyRing, KeyUnavailableError, Sealed
from diboas.kit.errors import NotFoundError
from diboas.kit.money import format_amount, parse_amount
from diboas.ledger import service as ledger
from diboas.ledger.models import Account, Domain, OwnerType
from diboas.observability.metrics import FEE_REVENUE, TRANSACTIONS
from diboas.orchestration.repository import SagaStep
from diboas.providers.payments import BankAccountDetails
from diboas.settings import Settings

DEPOSIT_SETTLE_JOB = "banking.deposit_settle"
PAYOUT_JOB = "banking.payout"

# Banking moves US dollars only for now; other currencies come with their payment rails.
SUPPORTED_CURRENCIES = {"USD": 2}


def parse_usd(currency: str, amount: str) -> tuple[str, Decimal]:
    """The currency and the parsed amount of a banking movement (USD only)."""
    scale = SUPPORTED_CURRENCIES.get(currency)
    if scale is None:
        raise UnsupportedCurrencyError(
            f"banking does not move {currency}",
            details={"currency": currency, "supported": sorted(SUPPORTED_CURRENCIES)},
        )
    return currency, parse_amount(amount, scale)


async def lock_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    """The user, re-read under its row lock (limits are checked and used under it)."""
    user = await users.get(session, user_id, lock=True)
    if user is None or user.status != "active":
        raise NotFoundError("no such user")
    return user


async def banking_account(session: AsyncSession, user_id: uuid.UUID, currency: str) -> Account:
    """A user's available banking account in ``currency`` (opened on first use)."""
    return await ledger.customer_account(
        session, owner_type=OwnerType.USER, owner_id=user_id, domain=Domain.BANKING, asset=currency
    )


# --- fees as recorded on a transaction -------------------------------------------------------


def fee_record(fee: FeeBreakdown) -> dict[str, Any]:
    """The fee as kept in a transaction's metadata, to be charged at settlement."""
    return {**fee.as_dict(), "provider_name": fee.provider_name}


def fee_from_record(transaction: Transaction) -> FeeBreakdown:
    """The fee a pending transaction was accepted with."""
    record = transaction.metadata.get("fee") or {}
    return FeeBreakdown(
        currency=transaction.asset,
        platform=Decimal(record.get("platform", "0")),
        provider=Decimal(record.get("provider", "0")),
        network=Decimal(record.get("network", "0")),
        provider_name=str(record.get("provider_name", "sandbox")),
        quote_id=transaction.quote_id,
    )


# --- bank account numbers ----------------------------------------------------------------------


def bank_context(bank_account_id: uuid.UUID, user_id: uuid.UUID) -> bytes:
    """What a sealed account number is bound to: its own row and owner."""
    return f"bank_accounts:{bank_account_id}:{user_id}".encode()


def bank_details(settings: Settings, account: BankAccount) -> BankAccountDetails:
    """The account's full details for the payment provider (decrypted; never logged).

    Raises ``KeyUnavailableError`` for a number sealed under a key version that is not
    configured: a job retries with backoff (and is kept as failed for an operator), moving no
    money, and goes on once the version is configured again.
    """
    number = KeyRing.from_settings(settings).decrypt(
        Sealed(account.key_version, account.account_number_ciphertext),
        context=bank_context(account.id, account.user_id),
    )
    return BankAccountDetails(account.holder_name, account.routing_number, number.decode())


async def own_bank_account(
    session: AsyncSession, settings: Settings, bank_account_id: uuid.UUID, user_id: uuid.UUID
) -> BankAccount:
    """The caller's active linked account, or 404 (another user's account is 404 too).

    An account whose number was sealed under a key version this process is not configured
    with is refused now (503, ``encryption_key_unavailable``), not accepted and then stuck in
    the job that would have to open it.
    """
    account = await repository.get_bank_account(session, bank_account_id, user_id=user_id)
    if account is None:
        raise BankAccountNotFoundError(
            "no such bank account", details={"bank_account_id": str(bank_account_id)}
        )
    try:
        KeyRing.from_settings(settings).require(account.key_version)
    except KeyUnavailableError as exc:
        raise KeyUnavailableError(
            "this bank account cannot be used right now; please try again later",
            details={"bank_account_id": str(bank_account_id)},
        ) from exc
    return account


# --- views ---------------------------------------------------------------------------------------


def transaction_out(
    transaction: Transaction, steps: Sequence[SagaStep] | None = None
) -> TransactionOut:
    """A transaction as its owner sees it (with its saga's steps, when given)."""
    fee = transaction.metadata.get("fee")
    breakdown = None
    if fee is not None:
        breakdown = {
            part: format_amount(Decimal(fee[part]), transaction.scale)
            for part in ("platform", "provider", "network")
        }
    return TransactionOut(
        id=transaction.id,
        type=transaction.type,
        status=transaction.status,
        domain=transaction.domain,
        amount=format_amount(transaction.amount, transaction.scale),
        currency=transaction.asset,
        fee=format_amount(transaction.fee, transaction.scale),
        fee_breakdown=breakdown,
        method=transaction.method,
        counterparty_email=transaction.counterparty_email,
        note=transaction.description,
        related_transaction_id=transaction.related_transaction_id,
        bank_account_id=transaction.bank_account_id,
        quote_id=transaction.quote_id,
        failure_code=transaction.failure_code,
        failure_reason=transaction.failure_reason,
        saga_state=transaction.saga_state,
        organisation_id=transaction.metadata.get("organisation_id"),
        steps=None
        if steps is None
        else [SagaStepOut(state=step.state, at=step.at, detail=step.detail) for step in steps],
        created_at=transaction.created_at,
        updated_at=transaction.updated_at,
        completed_at=transaction.completed_at,
        chain=_chain(transaction),
    )


def _chain(transaction: Transaction) -> ChainDepositOut | None:
    """A crypto deposit's chain details (kept in its metadata by the deposit watcher)."""
    if transaction.type != "crypto_deposit":
        return None
    meta = transaction.metadata
    keys = ChainDepositOut.model_fields
    return ChainDepositOut.model_validate({key: meta[key] for key in keys if key in meta})


def bank_account_out(account: BankAccount) -> BankAccountOut:
    """A linked account with its number masked."""
    return BankAccountOut(
        id=account.id,
        holder_name=account.holder_name,
        bank_name=account.bank_name,
        routing_number=account.routing_number,
        account_number_masked="••••" + account.account_last4,
        status=account.status,
        created_at=account.created_at,
    )


# --- metrics (counted after commit, so a rolled-back attempt counts nothing) --------------------

_OPERATIONS = {"deposit": "deposit", "withdrawal": "withdrawal", "transfer_out": "transfer"}


@dataclass(frozen=True, slots=True)
class Movement:
    """What a money movement wrote: its transactions (the caller's first)."""

    transactions: tuple[Transaction, ...]

    @property
    def primary(self) -> Transaction:
        return self.transactions[0]


def count_status(*transactions: Transaction) -> None:
    """Count each transaction entering its current status, and the fee revenue it posted."""
    for transaction in transactions:
        TRANSACTIONS.labels(transaction.type, transaction.status, transaction.domain).inc()
        operation = _OPERATIONS.get(transaction.type)
        if transaction.status == "completed" and operation is not None:
            fee = fee_from_record(transaction)
            revenue = fee.platform + fee.network
            if revenue > 0:
                FEE_REVENUE.labels(operation, transaction.asset).inc(float(revenue))
