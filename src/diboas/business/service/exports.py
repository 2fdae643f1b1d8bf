"""CSV exports of an organisation: its ledger movements and its audit log.

Every cell goes through ``safe_cell``: a cell that a spreadsheet would read as a formula (one
starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is prefixed with ``'``
(OWASP's CSV injection advice), and the csv module quotes separators, quotes and line breaks.
Amounts are written unsigned, with a ``direction`` column, so no figure needs the prefix.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.business import reports_repository as repository
from diboas.business.errors import ExportTooLargeError
from diboas.business.reports_repository import AuditRow, Movement
from diboas.kit.errors import InvalidRequestError
from diboas.kit.money import format_amount
from diboas.settings import Settings

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MOVEMENT_COLUMNS = (
    "created_at",
    "entry_id",
    "type",
    "direction",
    "amount",
    "currency",
    "balance_after",
    "counterparty_email",
    "note",
    "reference",
)
AUDIT_COLUMNS = (
    "id",
    "created_at",
    "actor_email",
    "actor_role",
    "action",
    "outcome",
    "ip",
    "request_id",
    "details",
)


def safe_cell(value: object) -> str:
    """A cell's text, defused if a spreadsheet would take it for a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV document (RFC 4180 line endings) of safe cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return buffer.getvalue()


@dataclass(frozen=True, slots=True)
class MovementPage:
    """Movements newest first, and the cursor of the next page (None at the end)."""

    items: list[Movement]
    next_cursor: str | None


def _cursor(movement: Movement) -> str:
    position = [movement.created_at.isoformat(), movement.entry_id, movement.account_id]
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def _position(cursor: str) -> tuple[datetime, int, int]:
    try:
        at, entry, account = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        position = (datetime.fromisoformat(at), int(entry), int(account))
    except (ValueError, TypeError):
        raise InvalidRequestError("the cursor is not valid", details={"field": "cursor"}) from None
    if position[0].tzinfo is None:
        raise InvalidRequestError("the cursor is not valid", details={"field": "cursor"})
    return position


async def movements_page(
    session: AsyncSession, organisation_id: uuid.UUID, *, cursor: str | None, limit: int
) -> MovementPage:
    """A page of the treasury's movements, newest first."""
    before = None if cursor is None else _position(cursor)
    found = await repository.movements_page(
        session, organisation_id, before=before, limit=limit + 1
    )
    more = len(found) > limit
    items = found[:limit]
    return MovementPage(items, _cursor(items[-1]) if more else None)


async def movements_csv(
    session: AsyncSession,
    settings: Settings,
    organisation_id: uuid.UUID,
    *,
    since: datetime | None,
    until: datetime | None,
) -> str:
    """The organisation's ledger movements in the period, oldest first."""
    limit = settings.business_export_max_rows
    found = await repository.movements(
        session, organisation_id, since=since, until=until, limit=limit + 1
    )
    if len(found) > limit:
        raise ExportTooLargeError(
            "more movements than one export holds: narrow the period with since/until",
            details={"max_rows": limit},
        )
    return to_csv(
        MOVEMENT_COLUMNS,
        (
            (
                m.created_at.isoformat(),
                m.entry_id,
                m.kind,
                "credit" if m.amount > 0 else "debit",
                format_amount(abs(m.amount), m.scale),
                m.asset,
                format_amount(m.balance_after, m.scale),
                m.counterparty_email,
                m.note,
                m.reference,
            )
            for m in found
        ),
    )


async def audit_page(
    session: AsyncSession, organisation_id: uuid.UUID, *, limit: int, before_id: int | None
) -> list[AuditRow]:
    """A page of the organisation's audit log, newest first."""
    return await repository.audit_rows(session, organisation_id, limit=limit, before_id=before_id)


async def audit_csv(session: AsyncSession, settings: Settings, organisation_id: uuid.UUID) -> str:
    """The organisation's audit log, newest first."""
    limit = settings.business_export_max_rows
    found = await repository.audit_rows(session, organisation_id, limit=limit + 1, before_id=None)
    if len(found) > limit:
        raise ExportTooLargeError(
            "more audit rows than one export holds", details={"max_rows": limit}
        )
    return to_csv(
        AUDIT_COLUMNS,
        (
            (
                r.id,
                r.created_at.isoformat(),
                r.actor_email,
                r.actor_role,
                r.action,
                r.outcome,
                r.ip,
                r.request_id,
                json.dumps(r.details, sort_keys=True, default=str),
            )
            for r in found
        ),
    )
