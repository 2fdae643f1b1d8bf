"""The database itself refuses what would create, lose or duplicate money — raw SQL,
committed on a plain connection, with no application code in the way."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import pytest

PLATFORM = "00000000-0000-0000-0000-000000000000"


async def _account(
    raw: asyncpg.Connection, owner_type: str = "user", kind: str = "available"
) -> int:
    owner = PLATFORM if owner_type == "platform" else str(uuid.uuid4())
    domain = "platform" if owner_type == "platform" else "banking"
    if owner_type == "platform":
        # Platform accounts are shared: a fresh shard keeps this test's rows its own.
        shard = await raw.fetchval("SELECT coalesce(max(shard), 0) + 1 FROM accounts")
    else:
        shard = 0
    return int(
        await raw.fetchval(
            """INSERT INTO accounts (owner_type, owner_id, domain, asset, kind, shard)
               VALUES ($1, $2, $3, 'USD', $4, $5) RETURNING id""",
            owner_type,
            uuid.UUID(owner),
            domain,
            kind,
            shard,
        )
    )


async def _funded(raw: asyncpg.Connection, amount: str = "100.00") -> tuple[int, int]:
    """A platform external account and a user account holding ``amount``."""
    external = await _account(raw, "platform", "external")
    user = await _account(raw)
    await raw.execute(
        "SELECT ledger_post('deposit', $1::bigint[], $2::numeric[])",
        [external, user],
        [Decimal(f"-{amount}"), Decimal(amount)],
    )
    return external, user


async def _balance(raw: asyncpg.Connection, account: int) -> Decimal:
    return Decimal(
        await raw.fetchval("SELECT balance FROM balances WHERE account_id = $1", account)
    )


async def _postings(raw: asyncpg.Connection, account: int) -> int:
    return int(await raw.fetchval("SELECT count(*) FROM postings WHERE account_id = $1", account))


async def test_unbalanced_entry_is_refused_at_commit(raw: asyncpg.Connection) -> None:
    external, user = await _funded(raw)
    before = await _postings(raw, user)
    with pytest.raises(asyncpg.PostgresError, match="unbalanced") as refused:
        async with raw.transaction():
            entry = await raw.fetchrow(
                "INSERT INTO entries (kind) VALUES ('raw') RETURNING id, created_at"
            )
            await raw.execute(
                """INSERT INTO postings (entry_id, created_at, account_id, amount)
                   VALUES ($1, $2, $3, -5), ($1, $2, $4, 4)""",
                entry["id"],
                entry["created_at"],
                external,
                user,
            )
    assert refused.value.sqlstate == "LD001"
    assert await _postings(raw, user) == before
    assert await _balance(raw, user) == Decimal("100.00")


async def test_posting_added_to_an_old_entry_is_refused(raw: asyncpg.Connection) -> None:
    _, user = await _funded(raw)
    entry = await raw.fetchrow(
        "SELECT entry_id, created_at FROM postings WHERE account_id = $1", user
    )
    with pytest.raises(asyncpg.PostgresError, match="unbalanced"):
        await raw.execute(
            "INSERT INTO postings (entry_id, created_at, account_id, amount) VALUES ($1, $2, $3, 7)",
            entry["entry_id"],
            entry["created_at"],
            user,
        )
    assert await _balance(raw, user) == Decimal("100.00")


async def test_entry_without_postings_is_refused(raw: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.PostgresError, match="no postings"):
        await raw.execute("INSERT INTO entries (kind) VALUES ('empty')")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE postings SET amount = amount * 2 WHERE account_id = $1",
        "DELETE FROM postings WHERE account_id = $1",
        "UPDATE entries SET kind = 'forged' WHERE id IN (SELECT entry_id FROM postings WHERE account_id = $1)",
        "DELETE FROM entries WHERE id IN (SELECT entry_id FROM postings WHERE account_id = $1)",
    ],
)
async def test_journal_is_append_only(raw: asyncpg.Connection, statement: str) -> None:
    _, user = await _funded(raw)
    with pytest.raises(asyncpg.PostgresError, match="append-only") as refused:
        await raw.execute(statement, user)
    assert refused.value.sqlstate == "LD002"
    assert await _postings(raw, user) == 1
    assert await _balance(raw, user) == Decimal("100.00")


@pytest.mark.parametrize("table", ["postings", "entries", "balances"])
async def test_ledger_tables_cannot_be_truncated(raw: asyncpg.Connection, table: str) -> None:
    _, user = await _funded(raw)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await raw.execute(f"TRUNCATE {table} CASCADE")
    assert await _postings(raw, user) == 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE balances SET balance = balance + 1000 WHERE account_id = $1",
        "UPDATE balances SET non_negative = false WHERE account_id = $1",
        "DELETE FROM balances WHERE account_id = $1",
    ],
)
async def test_balances_are_written_only_by_postings(
    raw: asyncpg.Connection, statement: str
) -> None:
    _, user = await _funded(raw)
    with pytest.raises(asyncpg.PostgresError, match="written only by postings"):
        await raw.execute(statement, user)
    assert await _balance(raw, user) == Decimal("100.00")


async def test_balanced_raw_entry_cannot_drive_a_user_negative(raw: asyncpg.Connection) -> None:
    external, user = await _funded(raw, "50.00")
    with pytest.raises(asyncpg.CheckViolationError, match="balance_non_negative"):
        async with raw.transaction():
            entry = await raw.fetchrow(
                "INSERT INTO entries (kind) VALUES ('raw') RETURNING id, created_at"
            )
            await raw.execute(
                """INSERT INTO postings (entry_id, created_at, account_id, amount)
                   VALUES ($1, $2, $3, 50.01), ($1, $2, $4, -50.01)""",
                entry["id"],
                entry["created_at"],
                external,
                user,
            )
    assert await _balance(raw, user) == Decimal("50.00")


async def test_held_balance_cannot_go_negative_either(raw: asyncpg.Connection) -> None:
    external = await _account(raw, "platform", "external")
    held = await _account(raw, kind="held")
    with pytest.raises(asyncpg.PostgresError, match="insufficient funds") as refused:
        await raw.execute(
            "SELECT ledger_post('raw', $1::bigint[], $2::numeric[])",
            [held, external],
            [Decimal("-1"), Decimal("1")],
        )
    assert refused.value.sqlstate == "LD010"


async def test_amount_beyond_the_asset_scale_is_refused(raw: asyncpg.Connection) -> None:
    external, user = await _funded(raw)
    with pytest.raises(asyncpg.PostgresError, match="more decimals"):
        await raw.execute(
            "SELECT ledger_post('raw', $1::bigint[], $2::numeric[])",
            [external, user],
            [Decimal("-0.001"), Decimal("0.001")],
        )


async def test_posting_to_an_unknown_account_is_refused(raw: asyncpg.Connection) -> None:
    external, _ = await _funded(raw)
    with pytest.raises(asyncpg.PostgresError, match="unknown account"):
        async with raw.transaction():
            entry = await raw.fetchrow(
                "INSERT INTO entries (kind) VALUES ('raw') RETURNING id, created_at"
            )
            await raw.execute(
                """INSERT INTO postings (entry_id, created_at, account_id, amount)
                   VALUES ($1, $2, $3, -1), ($1, $2, 987654321, 1)""",
                entry["id"],
                entry["created_at"],
                external,
            )


async def test_writer_supplied_chain_fields_are_overwritten(raw: asyncpg.Connection) -> None:
    """A raw writer cannot forge the balance_after, sequence or hash of its posting."""
    external, user = await _funded(raw)
    async with raw.transaction():
        entry = await raw.fetchrow(
            "INSERT INTO entries (kind) VALUES ('raw') RETURNING id, created_at"
        )
        await raw.execute(
            """INSERT INTO postings (entry_id, created_at, account_id, amount, account_seq, balance_after, hash)
               VALUES ($1, $2, $3, -1, 99, 12345, '\\xdead'), ($1, $2, $4, 1, 99, 12345, '\\xdead')""",
            entry["id"],
            entry["created_at"],
            external,
            user,
        )
    row = await raw.fetchrow(
        "SELECT account_seq, balance_after, length(hash) AS n FROM postings WHERE entry_id = $1 AND account_id = $2",
        entry["id"],
        user,
    )
    assert (row["account_seq"], row["balance_after"], row["n"]) == (2, Decimal("101.00"), 32)
