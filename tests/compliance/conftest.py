"""Helpers for compliance tests: users and transactions written inside the rolled-back
``session``."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.identity import repository
from diboas.identity.passwords import DUMMY_HASH
from diboas.identity.repository import User
from diboas.kit.ids import uuid7, uuid7_time


async def make_user(
    session: AsyncSession, *, tier: int = 1, full_name: str = "Grace Hopper", verified: bool = False
) -> User:
    """A user with the given KYC tier (flushed, rolled back with the test)."""
    user = await repository.insert(
        session,
        email=f"c-{uuid.uuid4().hex[:12]}@example.com",
        full_name=full_name,
        password_hash=DUMMY_HASH,
    )
    await session.execute(
        text(
            "UPDATE users SET kyc_tier = :tier, email_verified_at = CASE WHEN :v THEN now() END WHERE id = :id"
        ),
        {"tier": tier, "v": verified, "id": user.id},
    )
    found = await repository.get(session, user.id)
    assert found is not None and found.kyc_tier == tier
    return found


async def add_transaction(
    session: AsyncSession,
    user: User,
    kind: str,
    amount: str,
    *,
    at: datetime,
    status: str = "completed",
    asset: str = "USD",
) -> uuid.UUID:
    """A transactions row as banking would write it (UUIDv7 id whose time is created_at)."""
    tx_id = uuid7(at)
    await session.execute(
        text(
            "INSERT INTO transactions (id, created_at, user_id, type, status, domain, asset, amount) VALUES (:id, :created_at, :user_id, :type, :status, 'banking', :asset, :amount)"
        ),
        {
            "id": tx_id,
            "created_at": uuid7_time(tx_id),
            "user_id": user.id,
            "type": kind,
            "status": status,
            "asset": asset,
            "amount": Decimal(amount),
        },
    )
    return tx_id
