"""Linked bank accounts: numbers sealed with AES-256-GCM under a versioned key, shown masked,
refused when linked twice (by an HMAC fingerprint), removed rather than deleted."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository
from diboas.banking.errors import BankAccountExistsError, BankAccountNotFoundError
from diboas.banking.repository import BankAccount
from diboas.banking.schemas import BankAccountIn
from diboas.banking.service.common import bank_context
from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.kit.crypto import KeyRing
from diboas.settings import Settings

FINGERPRINT_PURPOSE = "bank_account"


def account_fingerprint(keys: KeyRing, routing_number: str, account_number: str) -> bytes:
    """The same account (routing and number) always gives the same fingerprint."""
    return keys.fingerprint(
        f"{routing_number}:{account_number}".encode(), purpose=FINGERPRINT_PURPOSE
    )


async def link(
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    request: BankAccountIn,
    context: AuditContext,
) -> BankAccount:
    """Link a bank account to the user; the same account twice is refused."""
    keys = KeyRing.from_settings(settings)
    bank_account_id = uuid.uuid4()
    sealed = keys.encrypt(
        request.account_number.encode(), context=bank_context(bank_account_id, user_id)
    )
    account = await repository.insert_bank_account(
        session,
        bank_account_id=bank_account_id,
        user_id=user_id,
        holder_name=request.holder_name,
        bank_name=request.bank_name,
        routing_number=request.routing_number,
        ciphertext=sealed.ciphertext,
        key_version=sealed.key_version,
        last4=request.account_number[-4:],
        fingerprint=account_fingerprint(keys, request.routing_number, request.account_number),
    )
    if account is None:
        raise BankAccountExistsError("this bank account is already linked")
    await audit.record(
        session,
        context,
        "banking.bank_account.link",
        subject_type="bank_account",
        subject_id=account.id,
        details={"bank_name": account.bank_name, "last4": account.account_last4},
    )
    return account


async def list_for(session: AsyncSession, user_id: uuid.UUID) -> list[BankAccount]:
    """The user's active linked accounts."""
    return await repository.list_bank_accounts(session, user_id)


async def remove(
    session: AsyncSession, *, user_id: uuid.UUID, bank_account_id: uuid.UUID, context: AuditContext
) -> None:
    """Unlink an account (kept, marked removed, for the movements that used it)."""
    if not await repository.remove_bank_account(session, bank_account_id, user_id):
        raise BankAccountNotFoundError(
            "no such bank account", details={"bank_account_id": str(bank_account_id)}
        )
    await audit.record(
        session,
        context,
        "banking.bank_account.remove",
        subject_type="bank_account",
        subject_id=bank_account_id,
    )
