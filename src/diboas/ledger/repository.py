"""All of the ledger's SQL. Money moves only through the ``ledger_post`` database function."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.kit.errors import NotFoundError
from diboas.ledger.errors import translate
from diboas.ledger.models import Account, AccountKind, Balance, Domain, EntryRef, OwnerType

_ACCOUNT_COLUMNS = """
    a.id, a.owner_type, a.owner_id, a.domain, a.asset, a.kind, a.shard, s.scale
"""

_OPEN_ACCOUNT = text("""
    INSERT INTO accounts (owner_type, owner_id, domain, asset, kind, shard)
    VALUES (:owner_type, :owner_id, :domain, :asset, :kind, :shard)
    ON CONFLICT ON CONSTRAINT accounts_identity DO NOTHING
""")

_FIND_ACCOUNT = text(f"""
    SELECT {_ACCOUNT_COLUMNS} FROM accounts a JOIN assets s ON s.code = a.asset
     WHERE a.owner_type = :owner_type AND a.owner_id = :owner_id AND a.domain = :domain
       AND a.asset = :asset AND a.kind = :kind AND a.shard = :shard
""")

_GET_ACCOUNT = text(f"""
    SELECT {_ACCOUNT_COLUMNS} FROM accounts a JOIN assets s ON s.code = a.asset WHERE a.id = :id
""")

_POST = text("""
    SELECT entry_id, created_at
      FROM ledger_post(:kind, :accounts, :amounts, :reference, :memo, CAST(:metadata AS jsonb))
""")

_BALANCE = text("""
    SELECT account_id, asset, balance, posting_count FROM balances WHERE account_id = :id
""")

_LOCK_BALANCE = text("SELECT balance FROM balances WHERE account_id = :id FOR UPDATE")

# An entry's postings by the entry's reference (entries_reference index, then postings_entry).
_ENTRY_POSTINGS = text("""
    SELECT p.account_id, p.amount
      FROM entries e
      JOIN postings p ON p.entry_id = e.id AND p.created_at = e.created_at
     WHERE e.reference = :reference
     ORDER BY p.account_id
""")

# The newest posting at or before the instant: one index probe on the postings primary key.
_BALANCE_AS_OF = text("""
    SELECT balance_after FROM postings
     WHERE account_id = :id AND created_at <= :at
     ORDER BY created_at DESC, account_seq DESC
     LIMIT 1
""")


def _account(row: RowMapping) -> Account:
    return Account(
        id=row["id"],
        owner_type=OwnerType(row["owner_type"]),
        owner_id=row["owner_id"],
        domain=Domain(row["domain"]),
        asset=row["asset"],
        kind=AccountKind(row["kind"]),
        shard=row["shard"],
        scale=row["scale"],
    )


async def open_account(
    session: AsyncSession,
    *,
    owner_type: OwnerType,
    owner_id: uuid.UUID,
    domain: Domain,
    asset: str,
    kind: AccountKind,
    shard: int = 0,
) -> Account:
    """The account with this identity, created (with its zero balance) if missing."""
    params = {
        "owner_type": owner_type.value,
        "owner_id": owner_id,
        "domain": domain.value,
        "asset": asset,
        "kind": kind.value,
        "shard": shard,
    }
    # Accounts are opened once and read on every movement: look first (one statement), and
    # only insert when missing.
    row = (await session.execute(_FIND_ACCOUNT, params)).mappings().one_or_none()
    if row is not None:
        return _account(row)
    try:
        await session.execute(_OPEN_ACCOUNT, params)
    except DBAPIError as exc:
        if "accounts_asset_fkey" in str(exc):
            raise NotFoundError(f"unknown asset {asset}", details={"asset": asset}) from exc
        raise
    # A separate statement, so that an account a concurrent transaction just created is seen.
    row = (await session.execute(_FIND_ACCOUNT, params)).mappings().one()
    return _account(row)


_FIND_ACCOUNTS = text(f"""
    SELECT {_ACCOUNT_COLUMNS} FROM accounts a JOIN assets s ON s.code = a.asset
     WHERE a.owner_type = :owner_type AND a.owner_id = ANY(:owner_ids) AND a.domain = :domain
       AND a.asset = :asset AND a.kind = :kind AND a.shard = 0
""")


async def find_accounts(
    session: AsyncSession,
    *,
    owner_type: OwnerType,
    owner_ids: Sequence[uuid.UUID],
    domain: Domain,
    asset: str,
    kind: AccountKind,
) -> dict[uuid.UUID, Account]:
    """The existing accounts of several owners with the same identity otherwise, by owner, in
    one statement (an owner without one is missing: ``open_account`` opens it)."""
    rows = await session.execute(
        _FIND_ACCOUNTS,
        {
            "owner_type": owner_type.value,
            "owner_ids": list(owner_ids),
            "domain": domain.value,
            "asset": asset,
            "kind": kind.value,
        },
    )
    return {account.owner_id: account for account in map(_account, rows.mappings())}


async def get_account(session: AsyncSession, account_id: int) -> Account:
    """The account with this id, or NotFoundError."""
    row = (await session.execute(_GET_ACCOUNT, {"id": account_id})).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"account {account_id} does not exist")
    return _account(row)


async def post(
    session: AsyncSession,
    *,
    kind: str,
    account_ids: Sequence[int],
    amounts: Sequence[Decimal],
    reference: str | None = None,
    memo: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> EntryRef:
    """Write one entry through ``ledger_post``; a refusal becomes its domain error."""
    params = {
        "kind": kind,
        "accounts": list(account_ids),
        "amounts": list(amounts),
        "reference": reference,
        "memo": memo,
        "metadata": json.dumps(metadata or {}),
    }
    try:
        row = (await session.execute(_POST, params)).one()
    except DBAPIError as exc:
        domain_error = translate(exc)
        if domain_error is not None:
            raise domain_error from exc
        raise
    return EntryRef(id=row.entry_id, created_at=row.created_at)


async def balance(session: AsyncSession, account_id: int) -> Balance:
    """The stored balance of an account."""
    row = (await session.execute(_BALANCE, {"id": account_id})).one_or_none()
    if row is None:
        raise NotFoundError(f"account {account_id} does not exist")
    return Balance(
        account_id=row.account_id,
        asset=row.asset,
        balance=row.balance,
        posting_count=row.posting_count,
    )


async def locked_balance(session: AsyncSession, account_id: int) -> Decimal:
    """An account's balance, its row locked until the transaction ends (so what is read is
    what a posting in the same transaction will meet)."""
    value = (await session.execute(_LOCK_BALANCE, {"id": account_id})).scalar_one()
    return Decimal(value)


async def entry_postings(session: AsyncSession, reference: str) -> list[tuple[int, Decimal]]:
    """The (account id, signed amount) postings of the entries carrying ``reference``."""
    rows = await session.execute(_ENTRY_POSTINGS, {"reference": reference})
    return [(int(row.account_id), Decimal(row.amount)) for row in rows]


async def balance_as_of(session: AsyncSession, account_id: int, at: datetime) -> Decimal:
    """The balance after the last posting at or before ``at`` (zero before the first)."""
    value = (await session.execute(_BALANCE_AS_OF, {"id": account_id, "at": at})).scalar()
    return Decimal(0) if value is None else Decimal(value)


async def commit_window_seconds(session: AsyncSession) -> float:
    """The ledger's commit window: balances older than this are final."""
    value = (
        await session.execute(text("SELECT extract(epoch FROM ledger_commit_window())"))
    ).scalar_one()
    return float(value)
