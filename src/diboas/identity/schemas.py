"""Identity request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, EmailStr, Field

from diboas.kit.schemas import StrictModel, Text


class RegisterIn(StrictModel):
    """Sign-up."""

    email: EmailStr
    password: str = Field(min_length=1, max_length=256)
    full_name: Text(200)  # type: ignore[valid-type]


class LoginIn(StrictModel):
    """Sign-in."""

    email: EmailStr
    password: str = Field(min_length=1, max_length=256)


class RefreshIn(StrictModel):
    """Token refresh."""

    refresh_token: str = Field(min_length=16, max_length=256)


class TokenOut(BaseModel):
    """A new token pair."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int


class UserOut(BaseModel):
    """The caller's own profile."""

    id: uuid.UUID
    email: str
    full_name: str
    role: str
    kyc_tier: int
    kyc_status: str
    email_verified: bool
    created_at: datetime | None


class SessionOut(BaseModel):
    """One open sign-in."""

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


class TokenIn(StrictModel):
    """A single-use token from an email."""

    token: str = Field(min_length=16, max_length=256)


class PasswordResetRequestIn(StrictModel):
    """Ask for a password-reset email."""

    email: EmailStr


class PasswordResetIn(StrictModel):
    """Set a new password with a reset token."""

    token: str = Field(min_length=16, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class PasswordChangeIn(StrictModel):
    """Change the password while signed in."""

    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class AcceptedOut(BaseModel):
    """An acknowledgement with nothing else to say."""

    status: str = "accepted"


class RoleChangeIn(StrictModel):
    """An administrator's change of a user's role."""

    role: str = Field(min_length=1, max_length=32)
