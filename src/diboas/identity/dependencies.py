"""Who is calling: bearer-token authentication and the permission each route declares.

Every route must declare exactly one of ``requires(permission)`` or ``public()``; a test walks
the app and fails on a route with neither (deny by default).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from diboas.api.deps import DatabaseDep, SettingsDep, get_database
from diboas.identity import repository, tokens
from diboas.identity.repository import User
from diboas.identity.roles import has_permission
from diboas.kit.errors import DomainError
from diboas.settings import Settings

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
    claims = _verified_claims(request, settings, credentials.credentials)

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


# A verified token's claims, per app, so a client's next requests skip the signature check
# (about a tenth of a cheap request's CPU). Only the exact token string verified before hits,
# and only until its expiry; the session behind it is still checked on every request.
_VERIFIED_TOKENS_MAX = 8192


def _verified_claims(request: Request, settings: Settings, token: str) -> tokens.AccessClaims:
    state = request.app.state
    cache: dict[str, tokens.AccessClaims] | None = None
    if settings is getattr(state, "settings", None):  # the app's own keys verified it
        cache = getattr(state, "verified_tokens", None)
        if cache is None:
            cache = state.verified_tokens = {}
        claims = cache.get(token)
        if claims is not None and claims.expires_at.timestamp() > time.time():
            return claims
    try:
        claims = tokens.verify_access_token(settings, token)
    except tokens.InvalidTokenError:
        raise UnauthorizedError("the access token is not valid") from None
    if cache is not None:
        if len(cache) >= _VERIFIED_TOKENS_MAX:
            cache.clear()  # crude but bounded; live clients re-verify once
        cache[token] = claims
    return claims


async def _request_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    # ``authenticate`` with the app's settings and database taken straight from the app:
    # two dependencies fewer for FastAPI to solve on every authenticated request.
    return await authenticate(
        request, request.app.state.settings, await get_database(request), credentials
    )


def requires(permission: str) -> Any:
    """A route dependency: the caller must be signed in and hold ``permission``."""

    async def check(caller: Annotated[Caller, Depends(_request_caller)]) -> Caller:
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


CurrentCaller = Annotated[Caller, Depends(_request_caller)]
