"""Identity: sign-up, sign-in with lockout, token refresh with rotation and reuse detection,
sign-out, sessions, password change and reset, email verification.

Services take the session and never commit. Sign-in failures must be recorded even though
the sign-in is refused, so the endpoint commits them before raising (see endpoints).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.identity import passwords, repository, tokens
from diboas.identity.repository import AuthSession, User
from diboas.identity.roles import Role
from diboas.kit.errors import ConflictError, DomainError, InvalidRequestError, NotFoundError
from diboas.notifications import email as email_jobs
from diboas.settings import Settings


class InvalidCredentialsError(DomainError):
    """Wrong email or password (never says which)."""

    status_code = 401
    code = "invalid_credentials"


class AccountLockedError(DomainError):
    """Too many failed sign-ins: locked for a while."""

    status_code = 423
    code = "account_locked"


class InvalidRefreshTokenError(DomainError):
    """The refresh token is unknown, expired, revoked or already used."""

    status_code = 401
    code = "invalid_refresh_token"


class InvalidOneTimeTokenError(DomainError):
    """An emailed token that is unknown, used or expired."""

    status_code = 400
    code = "invalid_token"


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a sign-in or refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


@dataclass(frozen=True, slots=True)
class Client:
    """Where a request comes from (for sessions and the audit log)."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


def _context(client: Client, user: User | None = None) -> AuditContext:
    return AuditContext(
        actor_id=user.id if user else None,
        actor_role=user.role if user else None,
        ip=client.ip,
        request_id=client.request_id,
    )


async def register(
    session: AsyncSession,
    settings: Settings,
    *,
    email: str,
    password: str,
    full_name: str,
    client: Client,
) -> User:
    """Create a customer and mail them an email-verification link."""
    passwords.check_policy(password, email=email, min_length=settings.password_min_length)
    try:
        user = await repository.insert(
            session,
            email=email,
            full_name=full_name,
            password_hash=passwords.hash_password(password),
        )
    except repository.EmailTakenError:
        raise ConflictError(
            "an account with this email exists", details={"field": "email"}
        ) from None
    await audit.record(
        session, _context(client, user), "user.register", subject_type="user", subject_id=user.id
    )
    await send_verification_email(session, settings, user)
    return user


async def _issue(
    session: AsyncSession, settings: Settings, user: User, session_id: uuid.UUID
) -> TokenPair:
    refresh, digest = tokens.new_opaque_token()
    await repository.add_refresh_token(
        session,
        session_id=session_id,
        digest=digest,
        expires_at=datetime.now(UTC) + timedelta(days=settings.refresh_token_ttl_days),
    )
    access, ttl = tokens.issue_access_token(
        settings, user_id=user.id, session_id=session_id, role=user.role
    )
    return TokenPair(
        access_token=access, refresh_token=refresh, expires_in=ttl, session_id=session_id
    )


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """A sign-in's result: tokens, or the refusal to raise once the failure is committed."""

    tokens: TokenPair | None = None
    refusal: DomainError | None = None


async def login(
    session: AsyncSession, settings: Settings, *, email: str, password: str, client: Client
) -> LoginOutcome:
    """Check the password; count failures and lock after too many in a row."""
    user = await repository.find_by_email(session, email)
    if user is None:
        passwords.verify_password(passwords.DUMMY_HASH, password)  # same cost as a real check
        await audit.record(
            session,
            _context(client),
            "auth.login",
            outcome="failure",
            details={"reason": "unknown_email"},
        )
        return LoginOutcome(refusal=InvalidCredentialsError("wrong email or password"))
    user = await repository.get(session, user.id, lock=True) or user
    now = datetime.now(UTC)
    if user.locked_until is not None and user.locked_until > now:
        await audit.record(
            session,
            _context(client, user),
            "auth.login",
            outcome="refused",
            details={"reason": "locked"},
        )
        return LoginOutcome(refusal=_locked(user.locked_until))
    if user.status != "active" or not passwords.verify_password(
        await repository.password_hash(session, user.id), password
    ):
        updated = await repository.record_failed_login(
            session,
            user.id,
            max_failures=settings.login_max_failures,
            lockout_minutes=settings.login_lockout_minutes,
        )
        await audit.record(
            session,
            _context(client, user),
            "auth.login",
            outcome="failure",
            subject_type="user",
            subject_id=user.id,
            details={"failed_logins": updated.failed_logins},
        )
        if updated.locked_until is not None and updated.locked_until > now:
            await audit.record(
                session,
                _context(client, user),
                "auth.lockout",
                subject_type="user",
                subject_id=user.id,
                details={"until": updated.locked_until.isoformat()},
            )
            return LoginOutcome(refusal=_locked(updated.locked_until))
        return LoginOutcome(refusal=InvalidCredentialsError("wrong email or password"))
    await repository.record_successful_login(session, user.id)
    auth_session = await repository.create_session(
        session,
        user_id=user.id,
        expires_at=now + timedelta(days=settings.refresh_token_ttl_days),
        user_agent=client.user_agent,
        ip=client.ip,
    )
    await audit.record(
        session,
        _context(client, user),
        "auth.login",
        subject_type="session",
        subject_id=auth_session.id,
    )
    return LoginOutcome(tokens=await _issue(session, settings, user, auth_session.id))


def _locked(until: datetime) -> AccountLockedError:
    return AccountLockedError(
        "too many failed sign-ins; try again later", details={"locked_until": until.isoformat()}
    )


async def refresh(
    session: AsyncSession, settings: Settings, *, refresh_token: str, client: Client
) -> LoginOutcome:
    """Rotate a refresh token. Reusing a rotated token revokes its whole session."""
    state = await repository.lock_refresh_token(session, tokens.token_digest(refresh_token))
    refusal = InvalidRefreshTokenError("the refresh token is not valid")
    if state is None or state.expired or state.session_revoked:
        return LoginOutcome(refusal=refusal)
    user = await repository.get(session, state.user_id)
    if user is None or user.status != "active":
        return LoginOutcome(refusal=refusal)
    if state.rotated:
        # A used token came back: it was stolen or replayed. End the session everywhere.
        await repository.revoke_session(session, state.session_id, reason="refresh_reuse")
        await audit.record(
            session,
            _context(client, user),
            "auth.refresh_reuse",
            outcome="refused",
            subject_type="session",
            subject_id=state.session_id,
        )
        return LoginOutcome(refusal=refusal)
    await repository.rotate_refresh_token(session, tokens.token_digest(refresh_token))
    await repository.touch_session(session, state.session_id)
    return LoginOutcome(tokens=await _issue(session, settings, user, state.session_id))


async def logout(
    session: AsyncSession, *, user: User, session_id: uuid.UUID, client: Client
) -> None:
    """End the caller's session: its refresh token and access tokens stop working."""
    await repository.revoke_session(session, session_id, reason="logout", user_id=user.id)
    await audit.record(
        session,
        _context(client, user),
        "auth.logout",
        subject_type="session",
        subject_id=session_id,
    )


async def sessions_of(session: AsyncSession, user: User) -> list[AuthSession]:
    """The user's open sessions."""
    return await repository.active_sessions(session, user.id)


async def revoke_session(
    session: AsyncSession, *, user: User, session_id: uuid.UUID, client: Client
) -> None:
    """End one of the user's own sessions (another user's is 404)."""
    if not await repository.revoke_session(session, session_id, reason="user", user_id=user.id):
        raise NotFoundError("no such session")
    await audit.record(
        session,
        _context(client, user),
        "auth.session_revoke",
        subject_type="session",
        subject_id=session_id,
    )


async def change_password(
    session: AsyncSession,
    settings: Settings,
    *,
    user: User,
    current: str,
    new: str,
    keep_session: uuid.UUID,
    client: Client,
) -> None:
    """Change the password; every other session is signed out."""
    if not passwords.verify_password(await repository.password_hash(session, user.id), current):
        raise InvalidCredentialsError("the current password is wrong")
    passwords.check_policy(new, email=user.email, min_length=settings.password_min_length)
    await repository.set_password(session, user.id, passwords.hash_password(new))
    await repository.revoke_all_sessions(
        session, user.id, reason="password_change", except_session=keep_session
    )
    await audit.record(
        session,
        _context(client, user),
        "auth.password_change",
        subject_type="user",
        subject_id=user.id,
    )


async def _mail_token(session: AsyncSession, settings: Settings, user: User, purpose: str) -> None:
    token, digest = tokens.new_opaque_token()
    await repository.add_one_time_token(
        session,
        user_id=user.id,
        purpose=purpose,
        digest=digest,
        expires_at=datetime.now(UTC) + timedelta(minutes=settings.one_time_token_ttl_minutes),
    )
    await email_jobs.stage_token_email(
        session, user_email=user.email, full_name=user.full_name, purpose=purpose, token=token
    )


async def send_verification_email(session: AsyncSession, settings: Settings, user: User) -> None:
    """Mail a single-use email-verification token."""
    if user.email_verified_at is None:
        await _mail_token(session, settings, user, "email_verification")


async def verify_email(session: AsyncSession, *, token: str, client: Client) -> None:
    """Consume an email-verification token."""
    user_id = await repository.use_one_time_token(
        session, digest=tokens.token_digest(token), purpose="email_verification"
    )
    if user_id is None:
        raise InvalidOneTimeTokenError("the verification link is invalid or has expired")
    await repository.mark_email_verified(session, user_id)
    user = await repository.get(session, user_id)
    await audit.record(
        session,
        _context(client, user),
        "user.email_verified",
        subject_type="user",
        subject_id=user_id,
    )


async def request_password_reset(
    session: AsyncSession, settings: Settings, *, email: str, client: Client
) -> None:
    """Mail a reset token if the account exists (the answer is the same either way)."""
    user = await repository.find_by_email(session, email)
    if user is not None and user.status == "active":
        await _mail_token(session, settings, user, "password_reset")
        await audit.record(
            session,
            _context(client, user),
            "auth.password_reset_requested",
            subject_type="user",
            subject_id=user.id,
        )


async def reset_password(
    session: AsyncSession, settings: Settings, *, token: str, new_password: str, client: Client
) -> None:
    """Set a new password with a reset token; every session is signed out."""
    user_id = await repository.use_one_time_token(
        session, digest=tokens.token_digest(token), purpose="password_reset"
    )
    user = None if user_id is None else await repository.get(session, user_id)
    if user is None:
        raise InvalidOneTimeTokenError("the reset link is invalid or has expired")
    passwords.check_policy(new_password, email=user.email, min_length=settings.password_min_length)
    await repository.set_password(session, user.id, passwords.hash_password(new_password))
    await repository.revoke_all_sessions(session, user.id, reason="password_change")
    await audit.record(
        session,
        _context(client, user),
        "auth.password_reset",
        subject_type="user",
        subject_id=user.id,
    )


async def change_role(
    session: AsyncSession, *, actor: User, user_id: uuid.UUID, role: str, client: Client
) -> User:
    """An administrator gives a user another role. The user's sessions end (their tokens carry
    the old role), and the change is audited with both roles."""
    if role not in {r.value for r in Role}:
        raise InvalidRequestError(
            f"unknown role {role!r}", details={"roles": [r.value for r in Role]}
        )
    if user_id == actor.id:
        raise ConflictError("administrators cannot change their own role")
    target = await repository.get(session, user_id, lock=True)
    if target is None:
        raise NotFoundError("no such user")
    if target.role != role:
        await repository.set_role(session, user_id, role)
        await repository.revoke_all_sessions(session, user_id, reason="admin")
    await audit.record(
        session,
        _context(client, actor),
        "user.role_change",
        subject_type="user",
        subject_id=user_id,
        details={"from": target.role, "to": role},
    )
    updated = await repository.get(session, user_id)
    assert updated is not None  # noqa: S101 - locked above
    return updated
