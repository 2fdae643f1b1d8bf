"""Monthly partitions: created ahead, idempotently, and rows land in their month."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.migrate import PARTITIONED_TABLES, ensure_partitions
from diboas.ledger import service
from tests.ledger.factories import user_account


async def _partitions(session: AsyncSession, table: str) -> list[str]:
    rows = await session.execute(
        text("""SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = CAST(:t AS regclass) ORDER BY 1"""),
        {"t": table},
    )
    return list(rows.scalars())


async def test_partitions_exist_ahead_for_every_growing_table(session: AsyncSession) -> None:
    today = date.today()  # noqa: DTZ011
    ahead = date(today.year + (today.month + 3 > 12), (today.month + 2) % 12 + 1, 1)
    for table in PARTITIONED_TABLES:
        names = await _partitions(session, table)
        assert f"{table}_y{today:%Y}m{today:%m}" in names
        assert f"{table}_y{ahead:%Y}m{ahead:%m}" in names


async def test_ensuring_partitions_is_idempotent_and_extends_the_horizon(
    session: AsyncSession,
) -> None:
    conn = await session.connection()
    assert await ensure_partitions(conn, months_ahead=3) == 0
    created = await ensure_partitions(conn, months_ahead=3, today=date(2031, 12, 15))
    assert created == len(PARTITIONED_TABLES) * 5  # Nov 2031 .. Mar 2032, for every table
    assert "postings_y2032m03" in await _partitions(session, "postings")


async def test_rows_land_in_the_partition_of_their_month(session: AsyncSession) -> None:
    alice = await user_account(session, funded="1.00")
    bob = await user_account(session)
    entry = await service.transfer(session, source=alice, destination=bob, amount=Decimal("1.00"))
    partition = (
        await session.execute(
            text("SELECT tableoid::regclass::text FROM postings WHERE entry_id = :e LIMIT 1"),
            {"e": entry.id},
        )
    ).scalar_one()
    assert partition == f"postings_y{entry.created_at:%Y}m{entry.created_at:%m}"
