"""Who is calling: bearer-token authentication and the permission each route declares.

Every route must declare exactly one of ``requires(permission)`` or ``public()``; a test walks
the app and fails on a route with neither (deny by default).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.identity import repository, tokens
from diboas.identity.repository import User
from diboas.identity.roles import has_permission
from diboas.kit.errors import DomainError

PERMISSION_ATTRIBUTE = "__diboas_permission__"
PUBLIC = "public"

_bearer = HTTPBearer(auto_error=False, description="An access token from /api/v1/auth/login")


class UnauthorizedError(DomainError):
    """No valid credentials."""

    status_code = 401
    code = "unauthorized"


class ForbiddenError(DomainError):
    """Valid credentials without the permission."""

    status_code = 403
    code = "forbidden"


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated user of a request and the session their token belongs to."""

    user: User
    session_id: uuid.UUID

    @property
    def id(self) -> uuid.UUID:
        return self.user.id


async def authenticate(
    request: Request,
    settings: SettingsDep,
    db: DatabaseDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The caller of a request with a valid access token of a live session, or 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("sign in to continue")
    try:
        claims = tokens.verify_access_token(settings, credentials.credentials)
    except tokens.InvalidTokenError:
        raise UnauthorizedError("the access token is not valid") from None

    user = await db.read_one(
        lambda session: repository.user_of_active_session(
            session, claims.session_id, claims.user_id
        )
    )
    if user is None or user.status != "active":
        raise UnauthorizedError("the session has ended")
    request.state.user_id = str(user.id)
    structlog.contextvars.bind_contextvars(user_id=str(user.id))
    return Caller(user=user, session_id=claims.session_id)


def requires(permission: str) -> Any:
    """A route dependency: the caller must be signed in and hold ``permission``."""

    async def check(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if not has_permission(caller.user.role, permission):
            raise ForbiddenError(f"this needs the {permission!r} permission")
        return caller

    setattr(check, PERMISSION_ATTRIBUTE, permission)
    return Depends(check)


def public() -> Any:
    """A route dependency that states, explicitly, that a route needs no sign-in."""

    async def open_to_all() -> None:
        return None

    setattr(open_to_all, PERMISSION_ATTRIBUTE, PUBLIC)
    return Depends(open_to_all)


def permission_of(dependency: Any) -> str | None:
    """The permission a dependency callable declares, if it is one of ours."""
    value = getattr(dependency, PERMISSION_ATTRIBUTE, None)
    return None if value is None else str(value)


CurrentCaller = Annotated[Caller, Depends(authenticate)]
