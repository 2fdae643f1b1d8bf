"""Transaction history: one user's movements, newest first, by cursor.

The cursor is the (created_at, id) of the last item handed out, base64url-encoded: opaque to
clients, stable under inserts (new movements land before it, never inside a walk), and
scoped by the caller's own id, so a forged cursor can only page through the caller's data.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository
from diboas.banking.errors import InvalidCursorError
from diboas.banking.repository import HistoryFilter, Transaction
from diboas.kit.errors import InvalidRequestError, NotFoundError
from diboas.orchestration import saga
from diboas.orchestration.repository import SagaStep

MAX_PAGE = 100


@dataclass(frozen=True, slots=True)
class Page:
    """One page of history and the cursor of the next (None on the last page)."""

    items: list[Transaction]
    next_cursor: str | None


def encode_cursor(transaction: Transaction) -> str:
    """The cursor that continues after ``transaction``."""
    raw = json.dumps({"at": transaction.created_at.isoformat(), "id": str(transaction.id)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor names, or InvalidCursorError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
        at = datetime.fromisoformat(value["at"])
        position = (at, uuid.UUID(value["id"]))
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise InvalidCursorError("the cursor is not one this API handed out") from None
    if at.tzinfo is None:
        raise InvalidCursorError("the cursor is not one this API handed out")
    return position


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidRequestError(
            f"{name} needs a time zone (e.g. 2026-01-31T00:00:00Z)", details={"field": name}
        )
    return value


async def page(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    limit: int,
    cursor: str | None = None,
    filters: HistoryFilter | None = None,
) -> Page:
    """A page of the user's transactions matching ``filters``."""
    filters = filters or HistoryFilter()
    since, until = _aware("since", filters.since), _aware("until", filters.until)
    if since is not None and until is not None and since >= until:
        raise InvalidRequestError("since must be before until", details={"field": "since"})
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be 1 to {MAX_PAGE}", details={"field": "limit"})
    after = None if cursor is None else decode_cursor(cursor)
    rows = await repository.list_transactions(
        session, user_id, filters=filters, after=after, limit=limit + 1
    )
    items = rows[:limit]
    return Page(items, encode_cursor(items[-1]) if len(rows) > limit else None)


async def get(
    session: AsyncSession, *, user_id: uuid.UUID, transaction_id: uuid.UUID
) -> Transaction:
    """One of the user's transactions; another user's is not found."""
    transaction = await repository.get_transaction(session, transaction_id, user_id=user_id)
    if transaction is None:
        raise NotFoundError("no such transaction", details={"transaction_id": str(transaction_id)})
    return transaction


async def get_with_steps(
    session: AsyncSession, *, user_id: uuid.UUID, transaction_id: uuid.UUID
) -> tuple[Transaction, list[SagaStep] | None]:
    """One of the user's transactions with its saga's steps (None: a movement without a
    saga, such as a P2P transfer, which completes at once)."""
    transaction = await get(session, user_id=user_id, transaction_id=transaction_id)
    if transaction.saga_state is None:
        return transaction, None
    return transaction, await saga.steps(session, transaction.id)
