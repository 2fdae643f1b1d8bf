"""The ledger service: open accounts, post balanced entries, move money, read balances.

Services take the session and never commit: the request or job scope does (db.transactions).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.kit.errors import InvalidAmountError, InvalidRequestError, LedgerRuleError
from diboas.kit.money import parse_amount
from diboas.ledger import repository
from diboas.ledger.models import (
    PLATFORM_OWNER_ID,
    Account,
    AccountKind,
    Balance,
    Domain,
    EntryRef,
    OwnerType,
)
from diboas.observability.metrics import LEDGER_ENTRIES
from diboas.realtime import events as realtime

open_account = repository.open_account
get_account = repository.get_account
find_accounts = repository.find_accounts
balance = repository.balance
locked_balance = repository.locked_balance
entry_postings = repository.entry_postings


async def platform_account(
    session: AsyncSession, *, asset: str, kind: AccountKind, shard: int = 0
) -> Account:
    """A platform account (fees, clearing, external, suspense, rounding) for ``asset``."""
    return await repository.open_account(
        session,
        owner_type=OwnerType.PLATFORM,
        owner_id=PLATFORM_OWNER_ID,
        domain=Domain.PLATFORM,
        asset=asset,
        kind=kind,
        shard=shard,
    )


async def customer_account(
    session: AsyncSession,
    *,
    owner_type: OwnerType,
    owner_id: uuid.UUID,
    domain: Domain,
    asset: str,
    kind: AccountKind = AccountKind.AVAILABLE,
) -> Account:
    """A user's or organisation's available (or held) account in a domain."""
    return await repository.open_account(
        session, owner_type=owner_type, owner_id=owner_id, domain=domain, asset=asset, kind=kind
    )


async def post_entry(
    session: AsyncSession,
    *,
    kind: str,
    postings: Sequence[tuple[Account, Decimal]],
    reference: str | None = None,
    memo: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> EntryRef:
    """Post one balanced entry. Amounts are signed: negative debits the account's balance.

    The database checks the rules again at commit; checking here first gives the caller a
    precise error before anything is written.
    """
    if len(postings) < 2:
        raise LedgerRuleError("an entry needs at least two postings")
    totals: dict[str, Decimal] = {}
    for account, amount in postings:
        if amount == 0:
            raise InvalidAmountError("a posting cannot be zero")
        parse_amount(abs(amount), account.scale)
        totals[account.asset] = totals.get(account.asset, Decimal(0)) + amount
    unbalanced = {asset: str(total) for asset, total in totals.items() if total != 0}
    if unbalanced:
        raise LedgerRuleError("entry does not balance", details={"totals": unbalanced})
    entry = await repository.post(
        session,
        kind=kind,
        account_ids=[account.id for account, _ in postings],
        amounts=[amount for _, amount in postings],
        reference=reference,
        memo=memo,
        metadata=metadata,
    )
    LEDGER_ENTRIES.labels(kind).inc()
    for owner in {a.owner_id for a, _ in postings if a.owner_type is OwnerType.USER}:
        realtime.balance_changed(session, owner)
    return entry


async def transfer(
    session: AsyncSession,
    *,
    source: Account,
    destination: Account,
    amount: Decimal,
    kind: str = "transfer",
    reference: str | None = None,
    memo: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> EntryRef:
    """Move ``amount`` from ``source`` to ``destination`` (same asset) as one entry."""
    if source.asset != destination.asset:
        raise LedgerRuleError(
            "a transfer moves one asset",
            details={"source": source.asset, "destination": destination.asset},
        )
    if source.id == destination.id:
        raise LedgerRuleError("source and destination are the same account")
    amount = parse_amount(amount, source.scale)
    return await post_entry(
        session,
        kind=kind,
        postings=[(source, -amount), (destination, amount)],
        reference=reference,
        memo=memo,
        metadata=metadata,
    )


@dataclass(frozen=True, slots=True)
class BalanceAsOf:
    """A balance at an instant. ``final`` is False while commits may still land before it."""

    account_id: int
    at: datetime
    balance: Decimal
    final: bool


async def balance_as_of(session: AsyncSession, account_id: int, at: datetime) -> BalanceAsOf:
    """The balance of an account at a past instant, from its postings."""
    if at.tzinfo is None:
        raise InvalidRequestError("as_of needs a time zone", details={"field": "as_of"})
    await repository.get_account(session, account_id)
    value = await repository.balance_as_of(session, account_id, at)
    window = await repository.commit_window_seconds(session)
    db_now = (await session.execute(text("SELECT clock_timestamp()"))).scalar_one()
    return BalanceAsOf(
        account_id=account_id,
        at=at.astimezone(UTC),
        balance=value,
        final=at <= db_now - timedelta(seconds=window),
    )


__all__ = [
    "Balance",
    "BalanceAsOf",
    "balance",
    "balance_as_of",
    "customer_account",
    "find_accounts",
    "get_account",
    "open_account",
    "platform_account",
    "post_entry",
    "transfer",
]
