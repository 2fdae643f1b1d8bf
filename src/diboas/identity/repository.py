"""Users' SQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class User:
    """A user as stored (never with the password hash)."""

    id: uuid.UUID
    email: str
    full_name: str
    role: str
    status: str


async def find_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this email (case-insensitive), if any."""
    row = (
        await session.execute(
            text("SELECT id, email, full_name, role, status FROM users WHERE email = :email"),
            {"email": email.strip().lower()},
        )
    ).one_or_none()
    return None if row is None else User(row.id, row.email, row.full_name, row.role, row.status)


async def insert(
    session: AsyncSession, *, email: str, full_name: str, password_hash: str, role: str = "customer"
) -> User:
    """Create a user; the caller checks that the email is free."""
    user_id = uuid.uuid4()
    await session.execute(
        text("""
            INSERT INTO users (id, email, full_name, password_hash, role)
            VALUES (:id, :email, :full_name, :password_hash, :role)
        """),
        {
            "id": user_id,
            "email": email.strip().lower(),
            "full_name": full_name,
            "password_hash": password_hash,
            "role": role,
        },
    )
    return User(user_id, email.strip().lower(), full_name, role, "active")
