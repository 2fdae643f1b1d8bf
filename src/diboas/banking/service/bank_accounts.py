"""Linked bank accounts: numbers sealed with AES-256-GCM under a versioned key, shown masked,
refused when linked twice (by an HMAC fingerprint), removed rather than deleted.

A key rotation re-seals the numbers and makes their fingerprints again under the new key
version (``reseal_batch``, driven by ``diboas keys reseal``). Until every row has moved, a
stored fingerprint may be under any configured version, so a link compares the account's
fingerprint under each of them, under the user's row lock (two links of the same account
cannot both pass the check).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository
from diboas.banking.errors import BankAccountExistsError, BankAccountNotFoundError
from diboas.banking.repository import BankAccount
from diboas.banking.schemas import BankAccountIn
from diboas.banking.service.common import bank_context, lock_user
from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.kit.crypto import KeyRing, Sealed
from diboas.settings import Settings

FINGERPRINT_PURPOSE = "bank_account"


def _identity(routing_number: str, account_number: str) -> bytes:
    return f"{routing_number}:{account_number}".encode()


def account_fingerprint(
    keys: KeyRing, routing_number: str, account_number: str, *, version: int | None = None
) -> bytes:
    """The same account (routing and number) always gives the same fingerprint under one key
    version (the current one by default)."""
    return keys.fingerprint(
        _identity(routing_number, account_number), purpose=FINGERPRINT_PURPOSE, version=version
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
    user = await lock_user(session, user_id)
    fingerprints = keys.fingerprints(
        _identity(request.routing_number, request.account_number), purpose=FINGERPRINT_PURPOSE
    )
    if await repository.bank_account_linked(session, user.id, list(fingerprints.values())):
        raise BankAccountExistsError("this bank account is already linked")
    bank_account_id = uuid.uuid4()
    sealed = keys.encrypt(
        request.account_number.encode(), context=bank_context(bank_account_id, user.id)
    )
    account = await repository.insert_bank_account(
        session,
        bank_account_id=bank_account_id,
        user_id=user.id,
        holder_name=request.holder_name,
        bank_name=request.bank_name,
        routing_number=request.routing_number,
        ciphertext=sealed.ciphertext,
        key_version=sealed.key_version,
        last4=request.account_number[-4:],
        fingerprint=fingerprints[keys.current],
        fingerprint_version=keys.current,
    )
    if account is None:  # linked by a process that did not check under our lock
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


# --- key rotation ------------------------------------------------------------------------------


@dataclass(slots=True)
class ResealBatch:
    """What one batch of re-sealing did; ``last_id`` is where the next batch starts."""

    resealed: int = 0
    last_id: uuid.UUID | None = None
    exhausted: bool = False  # no rows left after this batch
    # Active rows whose new fingerprint another active row of the same user already has (a
    # duplicate linked before these checks existed): sealed anew, fingerprint left as it was.
    kept_fingerprint: list[uuid.UUID] = field(default_factory=list)
    # Rows sealed under a version this ring lacks: left alone (``keys status`` reports them).
    unavailable: list[uuid.UUID] = field(default_factory=list)


async def reseal_batch(
    session: AsyncSession, keys: KeyRing, *, after: uuid.UUID | None, limit: int
) -> ResealBatch:
    """Re-seal up to ``limit`` accounts (after ``after`` by id) under the current key version
    and make their fingerprints again under it, each under its row lock."""
    rows = await repository.bank_accounts_to_reseal(
        session, after=after, current=keys.current, limit=limit
    )
    batch = ResealBatch(last_id=rows[-1].id if rows else after, exhausted=len(rows) < limit)
    for row in rows:
        if not keys.can_open(row.key_version):
            batch.unavailable.append(row.id)
            continue
        context = bank_context(row.id, row.user_id)
        number = keys.decrypt(
            Sealed(row.key_version, row.account_number_ciphertext), context=context
        )
        sealed = keys.encrypt(number, context=context)
        fingerprint = account_fingerprint(keys, row.routing_number, number.decode())
        keep_fingerprint = (
            row.fingerprint_version != keys.current
            and row.status == "active"
            and await repository.bank_account_linked(session, row.user_id, [fingerprint])
        )
        if keep_fingerprint:
            batch.kept_fingerprint.append(row.id)
        await repository.reseal_bank_account(
            session,
            bank_account_id=row.id,
            ciphertext=sealed.ciphertext,
            key_version=sealed.key_version,
            fingerprint=None if keep_fingerprint else fingerprint,
            fingerprint_version=row.fingerprint_version if keep_fingerprint else keys.current,
        )
        batch.resealed += 1
    return batch


async def key_versions(session: AsyncSession) -> dict[str, dict[int, int]]:
    """Rows per key version: ``{"key_version": {1: n, …}, "fingerprint_version": {…}}``."""
    return await repository.bank_account_key_versions(session)
