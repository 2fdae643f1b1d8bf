"""Holds: funds set aside from an available account until captured, released or expired.

Placing a hold moves the amount to the account's held twin; capturing moves it on to its
destination; releasing or expiring moves it back. Each step is one balanced ledger entry,
and the hold row (locked first, then the balance rows) records how much is left.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.kit.errors import ConflictError, InvalidAmountError, LedgerRuleError, NotFoundError
from diboas.kit.money import parse_amount
from diboas.ledger import repository, service
from diboas.ledger.models import Account, AccountKind


class HoldStatus(StrEnum):
    """Where a hold is in its life."""

    ACTIVE = "active"
    CAPTURED = "captured"
    RELEASED = "released"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Hold:
    """A hold as stored."""

    id: uuid.UUID
    account_id: int
    held_account_id: int
    asset: str
    amount: Decimal
    captured: Decimal
    released: Decimal
    status: HoldStatus
    reference: str | None
    expires_at: datetime

    @property
    def remaining(self) -> Decimal:
        """What is still held."""
        return self.amount - self.captured - self.released


_INSERT = text("""
    INSERT INTO holds (id, account_id, held_account_id, asset, amount, reference, expires_at)
    VALUES (:id, :account_id, :held_account_id, :asset, :amount, :reference, :expires_at)
    RETURNING *
""")
_LOCK = text("SELECT * FROM holds WHERE id = :id FOR UPDATE")
_UPDATE = text("""
    UPDATE holds
       SET captured = :captured, released = :released, status = :status, updated_at = now()
     WHERE id = :id RETURNING *
""")
_EXPIRED = text("""
    SELECT id FROM holds WHERE status = 'active' AND expires_at <= :now
     ORDER BY expires_at LIMIT :limit FOR UPDATE SKIP LOCKED
""")


def _hold(row: RowMapping) -> Hold:
    return Hold(
        id=row["id"],
        account_id=row["account_id"],
        held_account_id=row["held_account_id"],
        asset=row["asset"],
        amount=row["amount"],
        captured=row["captured"],
        released=row["released"],
        status=HoldStatus(row["status"]),
        reference=row["reference"],
        expires_at=row["expires_at"],
    )


async def place_hold(
    session: AsyncSession,
    *,
    account: Account,
    amount: Decimal,
    expires_at: datetime | None = None,
    ttl: timedelta = timedelta(days=7),
    reference: str | None = None,
) -> Hold:
    """Set ``amount`` aside from an available account (refused if it is not there)."""
    if account.kind is not AccountKind.AVAILABLE:
        raise LedgerRuleError("holds are placed on available accounts")
    amount = parse_amount(amount, account.scale)
    held = await service.customer_account(
        session,
        owner_type=account.owner_type,
        owner_id=account.owner_id,
        domain=account.domain,
        asset=account.asset,
        kind=AccountKind.HELD,
    )
    hold_id = uuid.uuid4()
    await service.post_entry(
        session,
        kind="hold.place",
        postings=[(account, -amount), (held, amount)],
        reference=f"hold:{hold_id}",
        metadata={"reference": reference} if reference else None,
    )
    if expires_at is None:
        db_now = (await session.execute(text("SELECT now()"))).scalar_one()
        expires_at = db_now + ttl
    row = (
        (
            await session.execute(
                _INSERT,
                {
                    "id": hold_id,
                    "account_id": account.id,
                    "held_account_id": held.id,
                    "asset": account.asset,
                    "amount": amount,
                    "reference": reference,
                    "expires_at": expires_at,
                },
            )
        )
        .mappings()
        .one()
    )
    return _hold(row)


async def _lock_active(session: AsyncSession, hold_id: uuid.UUID) -> Hold:
    row = (await session.execute(_LOCK, {"id": hold_id})).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"hold {hold_id} does not exist")
    hold = _hold(row)
    if hold.status is not HoldStatus.ACTIVE:
        raise ConflictError(
            f"hold is {hold.status.value}", details={"hold_id": str(hold_id), "status": hold.status}
        )
    return hold


def _portion(hold: Hold, amount: Decimal | None, scale: int) -> Decimal:
    if amount is None:
        return hold.remaining
    amount = parse_amount(amount, scale)
    if amount > hold.remaining:
        raise InvalidAmountError(
            "amount exceeds what the hold has left",
            details={"remaining": str(hold.remaining), "requested": str(amount)},
        )
    return amount


async def _save(
    session: AsyncSession, hold: Hold, *, captured: Decimal, released: Decimal, status: HoldStatus
) -> Hold:
    params = {"id": hold.id, "captured": captured, "released": released, "status": status.value}
    return _hold((await session.execute(_UPDATE, params)).mappings().one())


async def capture_hold(
    session: AsyncSession,
    hold_id: uuid.UUID,
    *,
    destination: Account | None = None,
    amount: Decimal | None = None,
    destinations: Sequence[tuple[Account, Decimal]] | None = None,
    release_remainder: bool = True,
    kind: str = "hold.capture",
) -> Hold:
    """Move all or part of what is held to ``destination`` — or split it among
    ``destinations`` (e.g. the payout and its fee accounts), all in one entry.

    With ``release_remainder`` (the default) whatever is not captured goes back to the
    available account in the same entry and the hold closes; otherwise the hold stays
    active for further captures.
    """
    if (destination is None) == (destinations is None):
        raise LedgerRuleError("capture to one destination or to a list of destinations")
    hold = await _lock_active(session, hold_id)
    held = await repository.get_account(session, hold.held_account_id)
    available = await repository.get_account(session, hold.account_id)
    if destinations is None:
        assert destination is not None  # noqa: S101 - checked above
        portion = _portion(hold, amount, held.scale)
        legs = [(destination, portion)]
    else:
        legs = [(account, parse_amount(value, held.scale)) for account, value in destinations]
        portion = _portion(hold, sum((value for _, value in legs), Decimal(0)), held.scale)
        if amount is not None and amount != portion:
            raise InvalidAmountError("amount differs from the sum of the destinations")
    if any(account.asset != hold.asset for account, _ in legs):
        raise LedgerRuleError("a hold is captured in its own asset")
    rest = hold.remaining - portion if release_remainder else Decimal(0)
    postings = [(held, -portion), *legs]
    if rest > 0:
        postings += [(held, -rest), (available, rest)]
    await service.post_entry(session, kind=kind, postings=postings, reference=f"hold:{hold.id}")
    captured = hold.captured + portion
    released = hold.released + rest
    closed = captured + released == hold.amount
    return await _save(
        session,
        hold,
        captured=captured,
        released=released,
        status=HoldStatus.CAPTURED if closed else HoldStatus.ACTIVE,
    )


async def release_hold(
    session: AsyncSession,
    hold_id: uuid.UUID,
    *,
    amount: Decimal | None = None,
    status: HoldStatus = HoldStatus.RELEASED,
) -> Hold:
    """Give back all (or part) of what is held to the available account."""
    hold = await _lock_active(session, hold_id)
    held = await repository.get_account(session, hold.held_account_id)
    available = await repository.get_account(session, hold.account_id)
    portion = _portion(hold, amount, held.scale)
    await service.post_entry(
        session,
        kind="hold.expire" if status is HoldStatus.EXPIRED else "hold.release",
        postings=[(held, -portion), (available, portion)],
        reference=f"hold:{hold.id}",
    )
    released = hold.released + portion
    closed = hold.captured + released == hold.amount
    if not closed:
        status = HoldStatus.ACTIVE
    elif hold.captured > 0 and status is HoldStatus.RELEASED:
        status = HoldStatus.CAPTURED
    return await _save(session, hold, captured=hold.captured, released=released, status=status)


async def expire_holds(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    """Release every active hold whose time is up; returns how many expired.

    Rows another worker is already expiring are skipped, so several workers can run this.
    """
    ids = (await session.execute(_EXPIRED, {"now": now, "limit": limit})).scalars().all()
    for hold_id in ids:
        await release_hold(session, hold_id, status=HoldStatus.EXPIRED)
    return len(ids)


async def get_hold(session: AsyncSession, hold_id: uuid.UUID) -> Hold:
    """The hold with this id."""
    row = (
        (await session.execute(text("SELECT * FROM holds WHERE id = :id"), {"id": hold_id}))
        .mappings()
        .one_or_none()
    )
    if row is None:
        raise NotFoundError(f"hold {hold_id} does not exist")
    return _hold(row)
