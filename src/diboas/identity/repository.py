"""Users' and sessions' SQL."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

_USER_COLUMNS = """id, email, full_name, role, status, kyc_tier, kyc_status, email_verified_at,
    failed_logins, locked_until, created_at"""


@dataclass(frozen=True, slots=True)
class User:
    """A user as stored (never with the password hash)."""

    id: uuid.UUID
    email: str
    full_name: str
    role: str
    status: str
    kyc_tier: int = 0
    kyc_status: str = "none"
    email_verified_at: datetime | None = None
    failed_logins: int = 0
    locked_until: datetime | None = None
    created_at: datetime | None = None


def _user(row: Row[tuple[object, ...]]) -> User:
    return User(**row._mapping)


async def get(session: AsyncSession, user_id: uuid.UUID, *, lock: bool = False) -> User | None:
    """The user with this id (locked for update when ``lock``)."""
    sql = f"SELECT {_USER_COLUMNS} FROM users WHERE id = :id" + (" FOR UPDATE" if lock else "")
    row = (await session.execute(text(sql), {"id": user_id})).one_or_none()
    return None if row is None else _user(row)


async def find_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this email (case-insensitive), if any."""
    row = (
        await session.execute(
            text(f"SELECT {_USER_COLUMNS} FROM users WHERE email = :email"),
            {"email": email.strip().lower()},
        )
    ).one_or_none()
    return None if row is None else _user(row)


async def password_hash(session: AsyncSession, user_id: uuid.UUID) -> str:
    """The stored Argon2id hash of a user's password."""
    result = await session.execute(
        text("SELECT password_hash FROM users WHERE id = :id"), {"id": user_id}
    )
    return str(result.scalar_one())


async def insert(
    session: AsyncSession, *, email: str, full_name: str, password_hash: str, role: str = "customer"
) -> User:
    """Create a user; the caller checks that the email is free."""
    row = (
        await session.execute(
            text(f"""
                INSERT INTO users (id, email, full_name, password_hash, role)
                VALUES (:id, :email, :full_name, :password_hash, :role)
                ON CONFLICT (email) DO NOTHING
                RETURNING {_USER_COLUMNS}
            """),
            {
                "id": uuid.uuid4(),
                "email": email.strip().lower(),
                "full_name": full_name,
                "password_hash": password_hash,
                "role": role,
            },
        )
    ).one_or_none()
    if row is None:
        raise EmailTakenError(email)
    return _user(row)


class EmailTakenError(Exception):
    """A user with this email exists already."""


async def record_failed_login(
    session: AsyncSession, user_id: uuid.UUID, *, max_failures: int, lockout_minutes: int
) -> User:
    """Count a failed login; the max_failures-th in a row locks the account for a while."""
    row = (
        await session.execute(
            text(f"""
                UPDATE users
                   SET failed_logins = failed_logins + 1,
                       locked_until = CASE WHEN failed_logins + 1 >= :max
                                           THEN now() + make_interval(mins => :minutes)
                                           ELSE locked_until END,
                       updated_at = now()
                 WHERE id = :id
             RETURNING {_USER_COLUMNS}
            """),
            {"id": user_id, "max": max_failures, "minutes": lockout_minutes},
        )
    ).one()
    return _user(row)


async def record_successful_login(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Reset the failure count after a good password."""
    await session.execute(
        text(
            "UPDATE users SET failed_logins = 0, locked_until = NULL"
            " WHERE id = :id AND failed_logins > 0"
        ),
        {"id": user_id},
    )


async def set_password(session: AsyncSession, user_id: uuid.UUID, new_hash: str) -> None:
    """Store a new password hash (and unlock the account)."""
    await session.execute(
        text("""UPDATE users SET password_hash = :h, password_changed_at = now(), failed_logins = 0,
                       locked_until = NULL, updated_at = now() WHERE id = :id"""),
        {"id": user_id, "h": new_hash},
    )


async def set_role(session: AsyncSession, user_id: uuid.UUID, role: str) -> None:
    """Give a user another role."""
    await session.execute(
        text("UPDATE users SET role = :role, updated_at = now() WHERE id = :id"),
        {"id": user_id, "role": role},
    )


async def mark_email_verified(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Record that the user proved they own their email address."""
    await session.execute(
        text(
            "UPDATE users SET email_verified_at = coalesce(email_verified_at, now()),"
            " updated_at = now() WHERE id = :id"
        ),
        {"id": user_id},
    )


# --- sessions and refresh tokens ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthSession:
    """One sign-in."""

    id: uuid.UUID
    user_id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    user_agent: str | None
    ip: str | None


_SESSION_COLUMNS = "id, user_id, created_at, last_used_at, expires_at, revoked_at, user_agent, ip"


async def create_session(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    expires_at: datetime,
    user_agent: str | None,
    ip: str | None,
) -> AuthSession:
    """Open a session for a sign-in."""
    row = (
        await session.execute(
            text(f"""INSERT INTO auth_sessions (id, user_id, expires_at, user_agent, ip)
                     VALUES (:id, :user_id, :expires_at, :ua, :ip) RETURNING {_SESSION_COLUMNS}"""),
            {
                "id": uuid.uuid4(),
                "user_id": user_id,
                "expires_at": expires_at,
                "ua": user_agent,
                "ip": ip,
            },
        )
    ).one()
    return AuthSession(**row._mapping)


async def add_refresh_token(
    session: AsyncSession, *, session_id: uuid.UUID, digest: bytes, expires_at: datetime
) -> None:
    """Store a refresh token's digest for a session."""
    await session.execute(
        text("INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES (:h, :s, :e)"),
        {"h": digest, "s": session_id, "e": expires_at},
    )


@dataclass(frozen=True, slots=True)
class RefreshTokenState:
    """A presented refresh token, with its session."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    expired: bool
    rotated: bool
    session_revoked: bool


async def lock_refresh_token(session: AsyncSession, digest: bytes) -> RefreshTokenState | None:
    """The refresh token with this digest, locked so two refreshes cannot both rotate it."""
    row = (
        await session.execute(
            text("""SELECT t.session_id, s.user_id,
                           t.expires_at < now() OR s.expires_at < now() AS expired,
                           t.rotated_at IS NOT NULL AS rotated,
                           s.revoked_at IS NOT NULL AS session_revoked
                      FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id
                     WHERE t.token_hash = :h FOR UPDATE OF t, s"""),
            {"h": digest},
        )
    ).one_or_none()
    return None if row is None else RefreshTokenState(**row._mapping)


async def rotate_refresh_token(session: AsyncSession, digest: bytes) -> None:
    """Mark a refresh token used."""
    await session.execute(
        text("UPDATE refresh_tokens SET rotated_at = now() WHERE token_hash = :h"), {"h": digest}
    )


async def touch_session(session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.execute(
        text("UPDATE auth_sessions SET last_used_at = now() WHERE id = :id"), {"id": session_id}
    )


async def revoke_session(
    session: AsyncSession, session_id: uuid.UUID, *, reason: str, user_id: uuid.UUID | None = None
) -> bool:
    """Revoke one session (of ``user_id`` when given); False if there was none to revoke."""
    result = await session.execute(
        text("""UPDATE auth_sessions SET revoked_at = now(), revoke_reason = :reason
                 WHERE id = :id AND revoked_at IS NULL
                   AND (CAST(:user_id AS uuid) IS NULL OR user_id = :user_id)"""),
        {"id": session_id, "reason": reason, "user_id": user_id},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_all_sessions(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    reason: str,
    except_session: uuid.UUID | None = None,
) -> int:
    """Revoke every open session of a user (but one, when given)."""
    result = await session.execute(
        text("""UPDATE auth_sessions SET revoked_at = now(), revoke_reason = :reason
                 WHERE user_id = :user_id AND revoked_at IS NULL
                   AND (CAST(:keep AS uuid) IS NULL OR id <> :keep)"""),
        {"user_id": user_id, "reason": reason, "keep": except_session},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def user_of_active_session(
    session: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID
) -> User | None:
    """The user behind a session that is neither revoked nor expired (one query per request)."""
    columns = ", ".join(f"u.{c.strip()}" for c in _USER_COLUMNS.split(","))
    row = (
        await session.execute(
            text(f"""SELECT {columns} FROM auth_sessions s JOIN users u ON u.id = s.user_id
                      WHERE s.id = :id AND s.user_id = :user_id
                        AND s.revoked_at IS NULL AND s.expires_at > now()"""),
            {"id": session_id, "user_id": user_id},
        )
    ).one_or_none()
    return None if row is None else _user(row)


async def active_sessions(session: AsyncSession, user_id: uuid.UUID) -> list[AuthSession]:
    """A user's open sessions, newest first."""
    rows = await session.execute(
        text(f"""SELECT {_SESSION_COLUMNS} FROM auth_sessions
                  WHERE user_id = :user_id AND revoked_at IS NULL AND expires_at > now()
                  ORDER BY last_used_at DESC"""),
        {"user_id": user_id},
    )
    return [AuthSession(**r._mapping) for r in rows]


# --- one-time tokens ------------------------------------------------------------------------


async def add_one_time_token(
    session: AsyncSession, *, user_id: uuid.UUID, purpose: str, digest: bytes, expires_at: datetime
) -> None:
    await session.execute(
        text("""INSERT INTO one_time_tokens (token_hash, user_id, purpose, expires_at)
                VALUES (:h, :u, :p, :e)"""),
        {"h": digest, "u": user_id, "p": purpose, "e": expires_at},
    )


async def use_one_time_token(
    session: AsyncSession, *, digest: bytes, purpose: str
) -> uuid.UUID | None:
    """Consume a valid, unused, unexpired token; returns its user, or None."""
    result = await session.execute(
        text("""UPDATE one_time_tokens SET used_at = now()
                 WHERE token_hash = :h AND purpose = :p AND used_at IS NULL AND expires_at > now()
             RETURNING user_id"""),
        {"h": digest, "p": purpose},
    )
    value = result.scalar()
    return None if value is None else uuid.UUID(str(value))
