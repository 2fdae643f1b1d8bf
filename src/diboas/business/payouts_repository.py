"""The SQL of payout batches and their rows."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class Recipient:
    """A user a payout row names."""

    id: uuid.UUID
    email: str
    full_name: str
    status: str


@dataclass(frozen=True, slots=True)
class PayoutRow:
    """One row of a payout file, as validated (and, once executed, paid)."""

    line: int
    recipient_email: str
    amount_text: str
    currency: str
    note: str | None
    status: str
    recipient_id: uuid.UUID | None = None
    amount: Decimal | None = None
    error_code: str | None = None
    error_message: str | None = None
    transaction_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class PayoutBatch:
    """A payout batch as stored."""

    id: uuid.UUID
    organisation_id: uuid.UUID
    status: str
    currency: str
    total: Decimal
    row_count: int
    invalid_count: int
    filename: str | None
    created_at: datetime
    executed_at: datetime | None


_BATCH_COLUMNS = """id, organisation_id, status, currency, total, row_count, invalid_count,
                    filename, created_at, executed_at"""
_ROW_COLUMNS = """line, recipient_email, amount_text, currency, note, status, recipient_id, amount,
                  error_code, error_message, transaction_id"""


async def recipients(session: AsyncSession, emails: Sequence[str]) -> dict[str, Recipient]:
    """The users with these (lower-case) emails, by email, in one statement."""
    rows = await session.execute(
        text("SELECT id, email, full_name, status FROM users WHERE email = ANY(:emails)"),
        {"emails": list(emails)},
    )
    return {r.email: Recipient(**r._mapping) for r in rows}


async def insert_batch(
    session: AsyncSession,
    *,
    batch_id: uuid.UUID,
    organisation_id: uuid.UUID,
    status: str,
    currency: str,
    total: Decimal,
    rows: Sequence[PayoutRow],
    filename: str | None,
    file_sha256: bytes,
    created_by_user: uuid.UUID | None,
    created_by_key: uuid.UUID | None,
) -> PayoutBatch:
    """Store a validated batch and its rows (one statement for all rows)."""
    batch = (
        await session.execute(
            text(f"""INSERT INTO payout_batches (id, organisation_id, status, currency, total,
                                                row_count, invalid_count, filename, file_sha256,
                                                created_by_user, created_by_key)
                     VALUES (:id, :org, :status, :currency, :total, :row_count, :invalid_count,
                             :filename, :sha, :by_user, :by_key)
                     RETURNING {_BATCH_COLUMNS}"""),
            {
                "id": batch_id,
                "org": organisation_id,
                "status": status,
                "currency": currency,
                "total": total,
                "row_count": len(rows),
                "invalid_count": sum(1 for r in rows if r.status == "invalid"),
                "filename": filename,
                "sha": file_sha256,
                "by_user": created_by_user,
                "by_key": created_by_key,
            },
        )
    ).one()
    await session.execute(
        text("""INSERT INTO payout_rows (batch_id, line, recipient_email, recipient_id,
                                         amount_text, amount, currency, note, status, error_code,
                                         error_message)
                VALUES (:batch, :line, :email, :recipient, :amount_text, :amount, :currency,
                        :note, :status, :error_code, :error_message)"""),
        [
            {
                "batch": batch_id,
                "line": r.line,
                "email": r.recipient_email,
                "recipient": r.recipient_id,
                "amount_text": r.amount_text,
                "amount": r.amount,
                "currency": r.currency,
                "note": r.note,
                "status": r.status,
                "error_code": r.error_code,
                "error_message": r.error_message,
            }
            for r in rows
        ],
    )
    return PayoutBatch(**batch._mapping)


async def latest_batch_of_file(
    session: AsyncSession, organisation_id: uuid.UUID, file_sha256: bytes
) -> uuid.UUID | None:
    """The organisation's latest batch made from a file with this SHA-256, if any."""
    found: uuid.UUID | None = (
        await session.execute(
            text("""SELECT id FROM payout_batches
                     WHERE organisation_id = :org AND file_sha256 = :sha
                     ORDER BY created_at DESC LIMIT 1"""),
            {"org": organisation_id, "sha": file_sha256},
        )
    ).scalar_one_or_none()
    return found


async def get_batch(
    session: AsyncSession, organisation_id: uuid.UUID, batch_id: uuid.UUID, *, lock: bool = False
) -> PayoutBatch | None:
    sql = f"SELECT {_BATCH_COLUMNS} FROM payout_batches WHERE id = :id AND organisation_id = :org"
    row = (
        await session.execute(
            text(sql + (" FOR UPDATE" if lock else "")), {"id": batch_id, "org": organisation_id}
        )
    ).one_or_none()
    return None if row is None else PayoutBatch(**row._mapping)


async def batches(
    session: AsyncSession, organisation_id: uuid.UUID, *, limit: int
) -> list[PayoutBatch]:
    rows = await session.execute(
        text(f"""SELECT {_BATCH_COLUMNS} FROM payout_batches WHERE organisation_id = :org
                  ORDER BY created_at DESC, id DESC LIMIT :limit"""),
        {"org": organisation_id, "limit": limit},
    )
    return [PayoutBatch(**r._mapping) for r in rows]


async def rows(session: AsyncSession, batch_id: uuid.UUID) -> list[PayoutRow]:
    found = await session.execute(
        text(f"SELECT {_ROW_COLUMNS} FROM payout_rows WHERE batch_id = :batch ORDER BY line"),
        {"batch": batch_id},
    )
    return [PayoutRow(**r._mapping) for r in found]


async def rows_to_pay(session: AsyncSession, batch_id: uuid.UUID, limit: int) -> list[PayoutRow]:
    """The next rows of the batch still to be paid, in file order."""
    found = await session.execute(
        text(f"""SELECT {_ROW_COLUMNS} FROM payout_rows
                  WHERE batch_id = :batch AND status = 'ok' ORDER BY line LIMIT :limit"""),
        {"batch": batch_id, "limit": limit},
    )
    return [PayoutRow(**r._mapping) for r in found]


async def unpaid_total(session: AsyncSession, batch_id: uuid.UUID) -> Decimal:
    """What the rows still to be paid add up to."""
    total = (
        await session.execute(
            text("""SELECT coalesce(sum(amount), 0) FROM payout_rows
                     WHERE batch_id = :batch AND status = 'ok'"""),
            {"batch": batch_id},
        )
    ).scalar_one()
    return Decimal(total)


async def mark_rows_paid(
    session: AsyncSession, batch_id: uuid.UUID, paid: Sequence[tuple[int, uuid.UUID]]
) -> None:
    """Record each paid row's transaction (in the transaction that paid it)."""
    await session.execute(
        text("""UPDATE payout_rows SET status = 'completed', transaction_id = :txn
                 WHERE batch_id = :batch AND line = :line AND status = 'ok'"""),
        [{"batch": batch_id, "line": line, "txn": txn} for line, txn in paid],
    )


async def complete_batch(
    session: AsyncSession,
    batch_id: uuid.UUID,
    *,
    executed_by_user: uuid.UUID | None,
    executed_by_key: uuid.UUID | None,
) -> PayoutBatch:
    """Mark the (locked) batch completed once no row is left to pay."""
    row = (
        await session.execute(
            text(f"""UPDATE payout_batches
                        SET status = 'completed', executed_at = now(), executed_by_user = :user,
                            executed_by_key = :key
                      WHERE id = :batch AND status = 'validated'
                  RETURNING {_BATCH_COLUMNS}"""),
            {"batch": batch_id, "user": executed_by_user, "key": executed_by_key},
        )
    ).one()
    return PayoutBatch(**row._mapping)
