"""Banking's SQL: transactions (what users see of their money movements) and linked bank
accounts. Money itself moves only through the ledger.

Transaction ids are UUIDv7 and ``created_at`` is the id's own instant, so every lookup by id
also names the partition (``created_at = uuid7_time(id)``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.kit.ids import uuid7_time
from diboas.realtime import events as realtime


@dataclass(frozen=True, slots=True)
class Transaction:
    """A transaction row (with its asset's scale and the counterparty's email)."""

    id: uuid.UUID
    created_at: datetime
    user_id: uuid.UUID
    type: str
    status: str
    domain: str
    asset: str
    scale: int
    amount: Decimal
    fee: Decimal
    method: str | None
    provider: str | None
    provider_reference: str | None
    counterparty_user_id: uuid.UUID | None
    counterparty_email: str | None
    related_transaction_id: uuid.UUID | None
    bank_account_id: uuid.UUID | None
    hold_id: uuid.UUID | None
    quote_id: uuid.UUID | None
    failure_code: str | None
    failure_reason: str | None
    description: str | None
    metadata: dict[str, Any]
    updated_at: datetime
    completed_at: datetime | None
    saga_state: str | None = None  # where its saga is (orchestration.saga); None without one

    @property
    def final(self) -> bool:
        """Nothing more will happen to it."""
        return self.status in ("completed", "failed", "reversed")


@dataclass(frozen=True, slots=True)
class NewTransaction:
    """What a movement writes when it is accepted."""

    id: uuid.UUID
    user_id: uuid.UUID
    type: str
    status: str
    asset: str
    amount: Decimal
    fee: Decimal = Decimal(0)
    domain: str = "banking"
    method: str | None = None
    provider: str | None = None
    counterparty_user_id: uuid.UUID | None = None
    related_transaction_id: uuid.UUID | None = None
    bank_account_id: uuid.UUID | None = None
    hold_id: uuid.UUID | None = None
    quote_id: uuid.UUID | None = None
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


_SELECT = """
    SELECT t.id, t.created_at, t.user_id, t.type, t.status, t.domain, t.asset, s.scale, t.amount,
           t.fee, t.method, t.provider, t.provider_reference, t.counterparty_user_id,
           cu.email AS counterparty_email, t.related_transaction_id, t.bank_account_id,
           t.hold_id, t.quote_id, t.failure_code, t.failure_reason, t.description, t.metadata,
           t.updated_at, t.completed_at, t.saga_state
      FROM transactions t
      JOIN assets s ON s.code = t.asset
      LEFT JOIN users cu ON cu.id = t.counterparty_user_id
"""

_INSERT = text("""
    INSERT INTO transactions (id, created_at, user_id, type, status, domain, asset, amount, fee,
                              method, provider, counterparty_user_id, related_transaction_id,
                              bank_account_id, hold_id, quote_id, description, metadata,
                              updated_at, completed_at)
    VALUES (:id, :created_at, :user_id, :type, :status, :domain, :asset, :amount, :fee, :method,
            :provider, :counterparty_user_id, :related_transaction_id, :bank_account_id,
            :hold_id, :quote_id, :description, CAST(:metadata AS jsonb),
            -- never before the row's own creation instant (the id's timestamp)
            greatest(now(), :created_at), CASE WHEN :status = 'completed' THEN greatest(now(), :created_at) END)
""")

_UPDATE_STATUS = text("""
    UPDATE transactions
       SET status = :status,
           provider = coalesce(:provider, provider),
           provider_reference = coalesce(:provider_reference, provider_reference),
           failure_code = :failure_code, failure_reason = :failure_reason,
           updated_at = now(),
           completed_at = CASE WHEN :status IN ('completed', 'failed') THEN now()
                               WHEN :status = 'reversed' THEN completed_at END
     WHERE id = :id AND created_at = :created_at
""")

_ENTRY_EXISTS = text("SELECT EXISTS (SELECT 1 FROM entries WHERE reference = :reference)")


def _transaction(row: RowMapping) -> Transaction:
    values = dict(row)
    # text() queries carry no column types, so asyncpg hands jsonb over as its text form.
    if isinstance(values["metadata"], str):
        values["metadata"] = json.loads(values["metadata"])
    return Transaction(**values)


def _params(new: NewTransaction) -> dict[str, Any]:
    return {
        "id": new.id,
        "created_at": uuid7_time(new.id),
        "user_id": new.user_id,
        "type": new.type,
        "status": new.status,
        "domain": new.domain,
        "asset": new.asset,
        "amount": new.amount,
        "fee": new.fee,
        "method": new.method,
        "provider": new.provider,
        "counterparty_user_id": new.counterparty_user_id,
        "related_transaction_id": new.related_transaction_id,
        "bank_account_id": new.bank_account_id,
        "hold_id": new.hold_id,
        "quote_id": new.quote_id,
        "description": new.description,
        "metadata": json.dumps(new.metadata),
    }


async def insert_transactions(session: AsyncSession, rows: Sequence[NewTransaction]) -> None:
    """Write accepted movements (one statement for all of them)."""
    await session.execute(_INSERT, [_params(row) for row in rows])
    for row in rows:
        realtime.transaction_changed(
            session,
            row.user_id,
            {"id": str(row.id), "type": row.type, "status": row.status, "currency": row.asset},
        )


async def get_transaction(
    session: AsyncSession,
    transaction_id: uuid.UUID,
    *,
    user_id: uuid.UUID | None = None,
    lock: bool = False,
) -> Transaction | None:
    """The transaction with this id (only if it is ``user_id``'s, when given)."""
    try:
        created_at = uuid7_time(transaction_id)
    except ValueError:
        return None  # not one of ours: every transaction id is a UUIDv7
    sql = _SELECT + " WHERE t.id = :id AND t.created_at = :created_at"
    params: dict[str, Any] = {"id": transaction_id, "created_at": created_at}
    if user_id is not None:
        sql += " AND t.user_id = :user_id"
        params["user_id"] = user_id
    if lock:
        sql += " FOR UPDATE OF t"
    row = (await session.execute(text(sql), params)).mappings().one_or_none()
    return None if row is None else _transaction(row)


async def transaction_id_for_provider_reference(
    session: AsyncSession, provider: str, reference: str
) -> uuid.UUID | None:
    """The transaction a provider knows by ``reference`` (indexed on provider, reference)."""
    value = (
        await session.execute(
            text("""SELECT id FROM transactions
                     WHERE provider = :provider AND provider_reference = :reference LIMIT 1"""),
            {"provider": provider, "reference": reference},
        )
    ).scalar()
    return None if value is None else uuid.UUID(str(value))


async def get_transactions(
    session: AsyncSession, transaction_ids: Sequence[uuid.UUID]
) -> list[Transaction]:
    """Transactions by id, in the order asked (ids that are not ours are skipped)."""
    ids = [i for i in transaction_ids if i.version == 7]
    rows = await session.execute(
        text(_SELECT + " WHERE t.id = ANY(:ids) AND t.created_at = ANY(:ats)"),
        {"ids": ids, "ats": [uuid7_time(i) for i in ids]},
    )
    found = {t.id: t for t in map(_transaction, rows.mappings())}
    return [found[i] for i in ids if i in found]


async def set_status(
    session: AsyncSession,
    transaction: Transaction,
    status: str,
    *,
    provider: str | None = None,
    provider_reference: str | None = None,
    failure_code: str | None = None,
    failure_reason: str | None = None,
) -> Transaction:
    """Move a transaction to ``status`` and return it as stored."""
    await session.execute(
        _UPDATE_STATUS,
        {
            "id": transaction.id,
            "created_at": transaction.created_at,
            "status": status,
            "provider": provider,
            "provider_reference": provider_reference,
            "failure_code": failure_code,
            "failure_reason": failure_reason,
        },
    )
    updated = await get_transaction(session, transaction.id)
    if updated is None:  # pragma: no cover - the caller holds the row lock
        raise LookupError(f"transaction {transaction.id} vanished")
    realtime.transaction_changed(
        session,
        updated.user_id,
        {
            "id": str(updated.id),
            "type": updated.type,
            "status": updated.status,
            "currency": updated.asset,
        },
    )
    return updated


@dataclass(frozen=True, slots=True)
class HistoryFilter:
    """Which of a user's transactions to list."""

    type: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_transactions(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    filters: HistoryFilter,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Transaction]:
    """A user's transactions, newest first, strictly after the cursor position ``after``."""
    # Only the clauses in use are added (each a constant), so that every combination gets a
    # plan that uses the (user_id, created_at DESC, id DESC) index.
    clauses = ["t.user_id = :user_id"]
    params: dict[str, Any] = {"user_id": user_id, "limit": limit}
    if filters.type is not None:
        clauses.append("t.type = :type")
        params["type"] = filters.type
    if filters.status is not None:
        clauses.append("t.status = :status")
        params["status"] = filters.status
    if filters.since is not None:
        clauses.append("t.created_at >= :since")
        params["since"] = filters.since
    if filters.until is not None:
        clauses.append("t.created_at < :until")
        params["until"] = filters.until
    if after is not None:
        clauses.append("(t.created_at, t.id) < (:after_at, :after_id)")
        params["after_at"], params["after_id"] = after
    sql = (
        _SELECT
        + " WHERE "
        + " AND ".join(clauses)
        + " ORDER BY t.created_at DESC, t.id DESC LIMIT :limit"
    )
    rows = (await session.execute(text(sql), params)).mappings().all()
    return [_transaction(row) for row in rows]


async def entry_exists(session: AsyncSession, reference: str) -> bool:
    """Whether the ledger holds an entry with this reference (a settlement already posted)."""
    return bool((await session.execute(_ENTRY_EXISTS, {"reference": reference})).scalar_one())


# --- linked bank accounts -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BankAccount:
    """A linked bank account as stored: the number only as ciphertext and last four digits."""

    id: uuid.UUID
    user_id: uuid.UUID
    holder_name: str
    bank_name: str
    routing_number: str
    account_number_ciphertext: bytes
    key_version: int
    fingerprint_version: int  # the key version its fingerprint was made under
    account_last4: str
    status: str
    created_at: datetime


_BANK_COLUMNS = """id, user_id, holder_name, bank_name, routing_number, account_number_ciphertext,
    key_version, fingerprint_version, account_last4, status, created_at"""

_INSERT_BANK = text(f"""
    INSERT INTO bank_accounts (id, user_id, holder_name, bank_name, routing_number,
                               account_number_ciphertext, key_version, account_last4, fingerprint,
                               fingerprint_version)
    VALUES (:id, :user_id, :holder_name, :bank_name, :routing_number, :ciphertext, :key_version,
            :last4, :fingerprint, :fingerprint_version)
    ON CONFLICT (user_id, fingerprint) WHERE status = 'active' DO NOTHING
    RETURNING {_BANK_COLUMNS}
""")


def _bank(row: RowMapping) -> BankAccount:
    values = dict(row)
    values["account_number_ciphertext"] = bytes(values["account_number_ciphertext"])
    return BankAccount(**values)


async def insert_bank_account(
    session: AsyncSession,
    *,
    bank_account_id: uuid.UUID,
    user_id: uuid.UUID,
    holder_name: str,
    bank_name: str,
    routing_number: str,
    ciphertext: bytes,
    key_version: int,
    last4: str,
    fingerprint: bytes,
    fingerprint_version: int,
) -> BankAccount | None:
    """Link an account; None when the user already has it linked (same fingerprint)."""
    row = (
        (
            await session.execute(
                _INSERT_BANK,
                {
                    "id": bank_account_id,
                    "user_id": user_id,
                    "holder_name": holder_name,
                    "bank_name": bank_name,
                    "routing_number": routing_number,
                    "ciphertext": ciphertext,
                    "key_version": key_version,
                    "last4": last4,
                    "fingerprint": fingerprint,
                    "fingerprint_version": fingerprint_version,
                },
            )
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else _bank(row)


async def list_bank_accounts(session: AsyncSession, user_id: uuid.UUID) -> list[BankAccount]:
    """A user's active linked accounts, oldest first."""
    rows = await session.execute(
        text(f"""SELECT {_BANK_COLUMNS} FROM bank_accounts
                  WHERE user_id = :user_id AND status = 'active' ORDER BY created_at, id"""),
        {"user_id": user_id},
    )
    return [_bank(row) for row in rows.mappings()]


async def get_bank_account(
    session: AsyncSession,
    bank_account_id: uuid.UUID,
    *,
    user_id: uuid.UUID | None = None,
    active_only: bool = True,
) -> BankAccount | None:
    """A linked account by id (only ``user_id``'s when given; only active ones by default)."""
    sql = f"SELECT {_BANK_COLUMNS} FROM bank_accounts WHERE id = :id"
    params: dict[str, Any] = {"id": bank_account_id}
    if user_id is not None:
        sql += " AND user_id = :user_id"
        params["user_id"] = user_id
    if active_only:
        sql += " AND status = 'active'"
    row = (await session.execute(text(sql), params)).mappings().one_or_none()
    return None if row is None else _bank(row)


async def remove_bank_account(
    session: AsyncSession, bank_account_id: uuid.UUID, user_id: uuid.UUID
) -> bool:
    """Mark a user's active account removed (kept for the movements that used it)."""
    result = await session.execute(
        text("""UPDATE bank_accounts SET status = 'removed', removed_at = now()
                 WHERE id = :id AND user_id = :user_id AND status = 'active'"""),
        {"id": bank_account_id, "user_id": user_id},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


_LINKED = text("""
    SELECT EXISTS (SELECT 1 FROM bank_accounts
                    WHERE user_id = :user_id AND status = 'active' AND fingerprint IN :fingerprints)
""").bindparams(bindparam("fingerprints", expanding=True))


async def bank_account_linked(
    session: AsyncSession, user_id: uuid.UUID, fingerprints: Sequence[bytes]
) -> bool:
    """Whether the user has an active account with any of these fingerprints (one account's
    fingerprints under every configured key version: rows not yet re-sealed keep an old one)."""
    params = {"user_id": user_id, "fingerprints": list(fingerprints)}
    return bool((await session.execute(_LINKED, params)).scalar_one())


_TO_RESEAL = text(f"""
    SELECT {_BANK_COLUMNS} FROM bank_accounts
     WHERE id > :after AND (key_version <> :current OR fingerprint_version <> :current)
     ORDER BY id LIMIT :limit
       FOR UPDATE
""")


async def bank_accounts_to_reseal(
    session: AsyncSession, *, after: uuid.UUID | None, current: int, limit: int
) -> list[BankAccount]:
    """The next ``limit`` accounts after ``after`` (by id) sealed or fingerprinted under
    another version than ``current``, each locked until the transaction ends."""
    params = {"after": after or uuid.UUID(int=0), "current": current, "limit": limit}
    return [_bank(row) for row in (await session.execute(_TO_RESEAL, params)).mappings()]


async def reseal_bank_account(
    session: AsyncSession,
    *,
    bank_account_id: uuid.UUID,
    ciphertext: bytes,
    key_version: int,
    fingerprint: bytes | None,
    fingerprint_version: int,
) -> None:
    """Store an account's number sealed again, and its fingerprint made again (``None``: the
    fingerprint stays as it is, under ``fingerprint_version``)."""
    await session.execute(
        text("""UPDATE bank_accounts
                   SET account_number_ciphertext = :ciphertext, key_version = :key_version,
                       fingerprint = coalesce(:fingerprint, fingerprint),
                       fingerprint_version = :fingerprint_version
                 WHERE id = :id"""),
        {
            "id": bank_account_id,
            "ciphertext": ciphertext,
            "key_version": key_version,
            "fingerprint": fingerprint,
            "fingerprint_version": fingerprint_version,
        },
    )


async def bank_account_key_versions(session: AsyncSession) -> dict[str, dict[int, int]]:
    """How many accounts use each key version, for sealing and for fingerprints."""
    rows = await session.execute(
        text("""SELECT 'key_version' AS used_for, key_version AS version, count(*) AS n
                  FROM bank_accounts GROUP BY key_version
                UNION ALL
                SELECT 'fingerprint_version', fingerprint_version, count(*)
                  FROM bank_accounts GROUP BY fingerprint_version""")
    )
    counts: dict[str, dict[int, int]] = {"key_version": {}, "fingerprint_version": {}}
    for used_for, version, n in rows:
        counts[used_for][int(version)] = int(n)
    return counts


_OWED = text("""
    SELECT b.balance FROM accounts a JOIN balances b ON b.account_id = a.id
     WHERE a.owner_type = 'user' AND a.owner_id = :user_id AND a.domain = 'banking'
       AND a.asset = :asset AND a.kind = 'owed' AND a.shard = 0
""")


async def owed(session: AsyncSession, user_id: uuid.UUID, asset: str) -> Decimal:
    """The balance of the customer's debt account (zero or negative; zero if it has none)."""
    value = (await session.execute(_OWED, {"user_id": user_id, "asset": asset})).scalar()
    return Decimal(0) if value is None else Decimal(value)


_REVERSED = text("""
    SELECT coalesce(sum(amount), 0) FROM transactions
     WHERE user_id = :user_id AND type = 'reversal' AND related_transaction_id = :id
""")


async def reversed_total(session: AsyncSession, deposit: Transaction) -> Decimal:
    """How much of a deposit has been reversed so far (refunds, chargebacks, returns)."""
    value = (
        await session.execute(_REVERSED, {"user_id": deposit.user_id, "id": deposit.id})
    ).scalar_one()
    return Decimal(value)
