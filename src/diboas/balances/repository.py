"""The Balance service's SQL: an owner's accounts (a user's, or an organisation's treasury)
with their balances, now or at an instant.

Each read is one statement. It starts from a one-row relation so that a user with no
accounts still gets the statement's instant (and, for a past instant, its finality).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_CUSTOMER_DOMAINS = "('banking', 'investing', 'defi')"

# The stored balances, read in one snapshot at statement_timestamp().
_NOW = text(f"""
    SELECT statement_timestamp() AS at, false AS final,
           h.domain, h.asset, h.kind, h.scale, h.balance
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (
          SELECT a.domain, a.asset, a.kind, s.scale, b.balance
            FROM accounts a
            JOIN balances b ON b.account_id = a.id
            JOIN assets s ON s.code = a.asset
           WHERE a.owner_type = :owner_type AND a.owner_id = :owner_id
             AND a.domain IN {_CUSTOMER_DOMAINS}
      ) AS h ON true
""")

# Per account, the newest posting at or before the instant (one probe of the postings
# primary key each). The answer is final once no commit can still land at or before the
# instant: the ledger refuses commits more than ledger_commit_window() after their entry's
# timestamp, and statement_timestamp() is taken before this statement's snapshot.
_AS_OF = text(f"""
    SELECT CAST(:at AS timestamptz) AS at,
           CAST(:at AS timestamptz) <= statement_timestamp() - ledger_commit_window() AS final,
           h.domain, h.asset, h.kind, h.scale, h.balance
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (
          SELECT a.domain, a.asset, a.kind, s.scale, coalesce(p.balance_after, 0) AS balance
            FROM accounts a
            JOIN assets s ON s.code = a.asset
            LEFT JOIN LATERAL (
                SELECT balance_after FROM postings
                 WHERE account_id = a.id AND created_at <= :at
                 ORDER BY created_at DESC, account_seq DESC
                 LIMIT 1
            ) AS p ON true
           WHERE a.owner_type = :owner_type AND a.owner_id = :owner_id
             AND a.domain IN {_CUSTOMER_DOMAINS}
      ) AS h ON true
""")


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """One of a user's accounts and its balance."""

    domain: str
    asset: str
    kind: str
    scale: int
    balance: Decimal


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A user's account balances at one instant; ``final`` when they can no longer change."""

    at: datetime
    final: bool
    accounts: list[AccountBalance]


async def user_balances(
    session: AsyncSession, owner_id: uuid.UUID, at: datetime | None = None
) -> Snapshot:
    """Every account of the user with its balance now (``at`` None) or at ``at``."""
    return await owner_balances(session, "user", owner_id, at)


async def owner_balances(
    session: AsyncSession, owner_type: str, owner_id: uuid.UUID, at: datetime | None = None
) -> Snapshot:
    """Every account of an owner (a user or an organisation) with its balance now or at ``at``."""
    params = {"owner_type": owner_type, "owner_id": owner_id}
    if at is None:
        result = await session.execute(_NOW, params)
    else:
        result = await session.execute(_AS_OF, {**params, "at": at})
    rows = result.all()
    accounts = [
        AccountBalance(row.domain, row.asset, row.kind, row.scale, Decimal(row.balance))
        for row in rows
        if row.domain is not None
    ]
    return Snapshot(at=rows[0].at, final=bool(rows[0].final), accounts=accounts)
