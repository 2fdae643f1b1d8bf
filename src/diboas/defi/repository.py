"""DeFi's SQL: strategies, risk profiles, positions, deposit batches, withdrawals and the
share prices seen. Money itself moves only through the ledger."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.defi.owners import Owner


@dataclass(frozen=True, slots=True)
class Strategy:
    """A strategy of the catalog."""

    id: str
    name: str
    protocol: str
    vault: str
    asset: str
    scale: int
    configured_apy: Decimal
    risk_score: int
    lockup_days: int
    min_amount: Decimal
    description: str
    platform_shares: Decimal


@dataclass(frozen=True, slots=True)
class Position:
    """A position: vault shares owned inside the omnibus wallet by a user or an organisation
    (exactly one of ``user_id`` and ``organisation_id`` is set)."""

    id: uuid.UUID
    user_id: uuid.UUID | None
    organisation_id: uuid.UUID | None
    strategy_id: str
    status: str
    principal: Decimal
    shares: Decimal
    withdrawing_shares: Decimal
    booked_value: Decimal
    deposit_transaction_id: uuid.UUID
    batch_id: uuid.UUID | None
    locked_until: datetime
    created_at: datetime

    @property
    def owner(self) -> Owner:
        """Whose position it is."""
        if self.organisation_id is not None:
            return Owner.organisation(self.organisation_id)
        assert self.user_id is not None  # noqa: S101 - the table's CHECK: one owner set
        return Owner.user(self.user_id)

    @property
    def free_shares(self) -> Decimal:
        """Shares not already being withdrawn."""
        return self.shares - self.withdrawing_shares


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A withdrawal in flight or done."""

    transaction_id: uuid.UUID
    position_id: uuid.UUID
    shares: Decimal
    booked_value: Decimal
    principal: Decimal
    status: str


_STRATEGY = """
    SELECT s.id, s.name, s.protocol, s.vault, s.asset, a.scale, s.configured_apy, s.risk_score,
           s.lockup_days, s.min_amount, s.description, s.platform_shares
      FROM defi_strategies s JOIN assets a ON a.code = s.asset
"""
_POSITION = """
    SELECT id, user_id, organisation_id, strategy_id, status, principal, shares, withdrawing_shares,
           booked_value, deposit_transaction_id, batch_id, locked_until, created_at
      FROM defi_positions
"""


def _owned(owner: Owner) -> str:
    """The condition picking the owner's positions (``:owner_id``): a plain equality on the
    owner's column, so each kind of owner is served by its own index."""
    return (
        " AND organisation_id = :owner_id" if owner.is_organisation else " AND user_id = :owner_id"
    )


def _strategy(row: RowMapping) -> Strategy:
    return Strategy(**dict(row))


def _position(row: RowMapping) -> Position:
    return Position(**dict(row))


async def list_strategies(session: AsyncSession) -> list[Strategy]:
    """Every active strategy, lowest risk first."""
    rows = await session.execute(text(_STRATEGY + " WHERE s.active ORDER BY s.risk_score, s.id"))
    return [_strategy(row) for row in rows.mappings()]


async def get_strategy(session: AsyncSession, strategy_id: str) -> Strategy | None:
    """An active strategy by id."""
    row = (
        (
            await session.execute(
                text(_STRATEGY + " WHERE s.active AND s.id = :id"), {"id": strategy_id}
            )
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else _strategy(row)


async def add_platform_shares(session: AsyncSession, strategy_id: str, shares: Decimal) -> None:
    """Credit the platform with a batch's rounding residue of shares."""
    await session.execute(
        text("UPDATE defi_strategies SET platform_shares = platform_shares + :s WHERE id = :id"),
        {"id": strategy_id, "s": shares},
    )


async def get_risk_profile(session: AsyncSession, owner: Owner) -> int | None:
    """The highest risk score the owner accepts, None without a profile."""
    sql = (
        "SELECT max_risk_score FROM defi_organisation_risk_profiles WHERE organisation_id = :id"
        if owner.is_organisation
        else "SELECT max_risk_score FROM defi_risk_profiles WHERE user_id = :id"
    )
    value = (await session.execute(text(sql), {"id": owner.id})).scalar()
    return None if value is None else int(value)


async def set_risk_profile(
    session: AsyncSession, owner: Owner, max_risk: int, *, set_by: uuid.UUID | None = None
) -> None:
    """Create or replace the owner's risk profile (an organisation's names the admin who set
    it, ``set_by``)."""
    if owner.is_organisation:
        if set_by is None:
            raise ValueError("an organisation's risk profile is set by one of its admins")
        await session.execute(
            text("""INSERT INTO defi_organisation_risk_profiles
                           (organisation_id, max_risk_score, set_by)
                    VALUES (:id, :m, :by)
                    ON CONFLICT (organisation_id) DO UPDATE
                       SET max_risk_score = :m, set_by = :by, updated_at = now()"""),
            {"id": owner.id, "m": max_risk, "by": set_by},
        )
        return
    await session.execute(
        text("""INSERT INTO defi_risk_profiles (user_id, max_risk_score) VALUES (:id, :m)
                ON CONFLICT (user_id) DO UPDATE SET max_risk_score = :m, updated_at = now()"""),
        {"id": owner.id, "m": max_risk},
    )


async def insert_position(
    session: AsyncSession,
    *,
    position_id: uuid.UUID,
    owner: Owner,
    strategy: Strategy,
    principal: Decimal,
    transaction_id: uuid.UUID,
    status: str = "pending",
) -> None:
    """A new position: ``pending`` waits for the next batch, ``funding`` for its deposit."""
    await session.execute(
        text("""INSERT INTO defi_positions (id, user_id, organisation_id, strategy_id, status,
                                            principal, deposit_transaction_id, locked_until)
                VALUES (:id, :user_id, :organisation_id, :strategy_id, :status, :principal,
                        :txn, now() + make_interval(days => :lockup))"""),
        {
            "id": position_id,
            **owner.columns(),
            "strategy_id": strategy.id,
            "principal": principal,
            "txn": transaction_id,
            "lockup": strategy.lockup_days,
            "status": status,
        },
    )


async def get_position(
    session: AsyncSession,
    position_id: uuid.UUID,
    *,
    owner: Owner | None = None,
    lock: bool = False,
) -> Position | None:
    """A position by id (only ``owner``'s when given)."""
    sql = _POSITION + " WHERE id = :id"
    params: dict[str, Any] = {"id": position_id}
    if owner is not None:
        sql += _owned(owner)
        params["owner_id"] = owner.id
    if lock:
        sql += " FOR UPDATE"
    row = (await session.execute(text(sql), params)).mappings().one_or_none()
    return None if row is None else _position(row)


async def owner_positions(session: AsyncSession, owner: Owner) -> list[Position]:
    """An owner's positions, newest first."""
    rows = await session.execute(
        text(_POSITION + " WHERE true" + _owned(owner) + " ORDER BY created_at DESC, id"),
        {"owner_id": owner.id},
    )
    return [_position(row) for row in rows.mappings()]


async def list_positions(session: AsyncSession, user_id: uuid.UUID) -> list[Position]:
    """A user's positions, newest first."""
    return await owner_positions(session, Owner.user(user_id))


async def claim_pending(session: AsyncSession, strategy_id: str) -> list[Position]:
    """Every pending deposit of a strategy, locked (rows another batch holds are skipped)."""
    rows = await session.execute(
        text(
            _POSITION
            + """ WHERE strategy_id = :s AND status = 'pending'
                              ORDER BY created_at, id FOR UPDATE SKIP LOCKED"""
        ),
        {"s": strategy_id},
    )
    return [_position(row) for row in rows.mappings()]


async def open_positions(session: AsyncSession, strategy_id: str) -> list[Position]:
    """Open positions of a strategy, locked, in id order (the accrual job marks them)."""
    rows = await session.execute(
        text(_POSITION + " WHERE strategy_id = :s AND status = 'open' ORDER BY id FOR UPDATE"),
        {"s": strategy_id},
    )
    return [_position(row) for row in rows.mappings()]


async def batch_positions(session: AsyncSession, batch_id: uuid.UUID) -> list[Position]:
    """The positions of a batch, locked, in id order."""
    rows = await session.execute(
        text(_POSITION + " WHERE batch_id = :b ORDER BY id FOR UPDATE"), {"b": batch_id}
    )
    return [_position(row) for row in rows.mappings()]


_POSITION_FIELDS = frozenset(
    {"status", "principal", "shares", "withdrawing_shares", "booked_value", "batch_id"}
)


async def update_position(session: AsyncSession, position_id: uuid.UUID, **values: Any) -> None:
    """Set some of a position's columns (names from a fixed set, never from input)."""
    unknown = set(values) - _POSITION_FIELDS
    if unknown:
        raise ValueError(f"not position columns: {sorted(unknown)}")
    assignments = ", ".join(f"{name} = :{name}" for name in sorted(values))
    await session.execute(
        text(
            f"UPDATE defi_positions SET {assignments}, updated_at = now() WHERE id = :id"
        ),  # names from a fixed set
        {"id": position_id, **values},
    )


async def insert_batch(
    session: AsyncSession,
    batch_id: uuid.UUID,
    strategy_id: str,
    assets: Decimal,
    deposits: int,
) -> None:
    """A batch about to be sent to the vault as one deposit."""
    await session.execute(
        text("""INSERT INTO defi_batches (id, strategy_id, status, assets, deposits)
                VALUES (:id, :s, 'submitted', :assets, :n)"""),
        {"id": batch_id, "s": strategy_id, "assets": assets, "n": deposits},
    )


async def finish_batch(
    session: AsyncSession,
    batch_id: uuid.UUID,
    *,
    status: str,
    shares: Decimal | None = None,
    gas_wei: int | None = None,
    gas_usd: Decimal | None = None,
    tx_hashes: tuple[str, ...] = (),
    failure: str | None = None,
) -> None:
    """Record what became of a batch."""
    await session.execute(
        text("""UPDATE defi_batches SET status = :status, shares = :shares, gas_wei = :gas_wei,
                       gas_usd = :gas_usd, tx_hashes = :hashes, failure = :failure,
                       updated_at = now()
                 WHERE id = :id"""),
        {
            "id": batch_id,
            "status": status,
            "shares": shares,
            "gas_wei": gas_wei,
            "gas_usd": gas_usd,
            "hashes": list(tx_hashes),
            "failure": failure,
        },
    )


async def insert_withdrawal(
    session: AsyncSession,
    *,
    transaction_id: uuid.UUID,
    position_id: uuid.UUID,
    shares: Decimal,
    booked_value: Decimal,
    principal: Decimal,
) -> None:
    """A withdrawal accepted: these shares are to be redeemed."""
    await session.execute(
        text("""INSERT INTO defi_withdrawals (transaction_id, position_id, shares, booked_value,
                                              principal, status)
                VALUES (:t, :p, :shares, :booked, :principal, 'pending')"""),
        {
            "t": transaction_id,
            "p": position_id,
            "shares": shares,
            "booked": booked_value,
            "principal": principal,
        },
    )


async def get_withdrawal(session: AsyncSession, transaction_id: uuid.UUID) -> Withdrawal | None:
    """A withdrawal by its transaction, locked."""
    row = (
        (
            await session.execute(
                text("""SELECT transaction_id, position_id, shares, booked_value, principal,
                               status
                          FROM defi_withdrawals WHERE transaction_id = :t FOR UPDATE"""),
                {"t": transaction_id},
            )
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else Withdrawal(**dict(row))


async def finish_withdrawal(
    session: AsyncSession, transaction_id: uuid.UUID, status: str, received: Decimal | None
) -> None:
    """Record what became of a withdrawal."""
    await session.execute(
        text("""UPDATE defi_withdrawals SET status = :status, assets_received = :received
                 WHERE transaction_id = :t"""),
        {"t": transaction_id, "status": status, "received": received},
    )


async def settle_transaction(
    session: AsyncSession,
    transaction_id: uuid.UUID,
    created_at: datetime,
    *,
    amount: Decimal,
    fee: Decimal,
    fee_record: dict[str, Any],
    extra: dict[str, Any],
) -> None:
    """Set a DeFi transaction's final amount and fee (known once the vault has answered)."""
    await session.execute(
        text("""UPDATE transactions
                   SET amount = :amount, fee = :fee,
                       metadata = metadata || jsonb_build_object('fee', CAST(:fee_record AS jsonb))
                                  || CAST(:extra AS jsonb)
                 WHERE id = :id AND created_at = :created_at"""),
        {
            "id": transaction_id,
            "created_at": created_at,
            "amount": amount,
            "fee": fee,
            "fee_record": json.dumps(fee_record),
            "extra": json.dumps(extra, default=str),
        },
    )


async def set_transaction_hold(
    session: AsyncSession, transaction_id: uuid.UUID, created_at: datetime, hold_id: uuid.UUID
) -> None:
    """Attach the hold placed once a funded investment's deposit arrived."""
    await session.execute(
        text("""UPDATE transactions SET hold_id = :hold, updated_at = now()
                 WHERE id = :id AND created_at = :created_at"""),
        {"id": transaction_id, "created_at": created_at, "hold": hold_id},
    )


async def lock_batch(session: AsyncSession, batch_id: uuid.UUID) -> tuple[str, str] | None:
    """A batch's (strategy id, status), locked."""
    row = (
        await session.execute(
            text("SELECT strategy_id, status FROM defi_batches WHERE id = :id FOR UPDATE"),
            {"id": batch_id},
        )
    ).one_or_none()
    return None if row is None else (row.strategy_id, row.status)
