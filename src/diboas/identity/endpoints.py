"""/api/v1/auth, /api/v1/me and the caller's sessions."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.identity import schemas, service
from diboas.identity.dependencies import CurrentCaller, public, requires
from diboas.identity.repository import User
from diboas.identity.service import Client, LoginOutcome

router = APIRouter(tags=["identity"])


def client_of(request: Request) -> Client:
    """Where the request comes from."""
    return Client(
        ip=request.client.host if request.client else None,
        user_agent=(request.headers.get("user-agent") or "")[:512] or None,
        request_id=getattr(request.state, "request_id", None),
    )


def user_out(user: User) -> schemas.UserOut:
    return schemas.UserOut(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=user.role,
        kyc_tier=user.kyc_tier,
        kyc_status=user.kyc_status,
        email_verified=user.email_verified_at is not None,
        created_at=user.created_at,
    )


def _tokens(outcome: LoginOutcome) -> schemas.TokenOut:
    # The failure was committed with the outcome (failed-login count, audit row); now refuse.
    if outcome.refusal is not None:
        raise outcome.refusal
    assert outcome.tokens is not None  # noqa: S101 - a LoginOutcome holds one or the other
    return schemas.TokenOut(
        access_token=outcome.tokens.access_token,
        refresh_token=outcome.tokens.refresh_token,
        expires_in=outcome.tokens.expires_in,
    )


@router.post("/auth/register", status_code=201, dependencies=[public()], summary="Sign up")
async def register(
    body: schemas.RegisterIn, request: Request, db: DatabaseDep, settings: SettingsDep
) -> schemas.UserOut:
    user = await db.run(
        lambda s: service.register(
            s,
            settings,
            email=body.email,
            password=body.password,
            full_name=body.full_name,
            client=client_of(request),
        )
    )
    return user_out(user)


@router.post("/auth/login", dependencies=[public()], summary="Sign in")
async def login(
    body: schemas.LoginIn, request: Request, db: DatabaseDep, settings: SettingsDep
) -> schemas.TokenOut:
    outcome = await db.run(
        lambda s: service.login(
            s, settings, email=body.email, password=body.password, client=client_of(request)
        )
    )
    return _tokens(outcome)


@router.post("/auth/refresh", dependencies=[public()], summary="Rotate the refresh token")
async def refresh(
    body: schemas.RefreshIn, request: Request, db: DatabaseDep, settings: SettingsDep
) -> schemas.TokenOut:
    outcome = await db.run(
        lambda s: service.refresh(
            s, settings, refresh_token=body.refresh_token, client=client_of(request)
        )
    )
    return _tokens(outcome)


@router.post(
    "/auth/logout", status_code=204, dependencies=[requires("sessions:manage")], summary="Sign out"
)
async def logout(caller: CurrentCaller, request: Request, db: DatabaseDep) -> Response:
    await db.run(
        lambda s: service.logout(
            s, user=caller.user, session_id=caller.session_id, client=client_of(request)
        )
    )
    return Response(status_code=204)


@router.get("/me", dependencies=[requires("profile:read")], summary="The caller's profile")
async def me(caller: CurrentCaller) -> schemas.UserOut:
    return user_out(caller.user)


@router.get("/me/sessions", dependencies=[requires("sessions:manage")], summary="Open sessions")
async def list_sessions(caller: CurrentCaller, db: DatabaseDep) -> list[schemas.SessionOut]:
    sessions = await db.run(lambda s: service.sessions_of(s, caller.user))
    return [
        schemas.SessionOut(
            id=x.id,
            created_at=x.created_at,
            last_used_at=x.last_used_at,
            user_agent=x.user_agent,
            ip=x.ip,
            current=x.id == caller.session_id,
        )
        for x in sessions
    ]


@router.delete(
    "/me/sessions/{session_id}",
    status_code=204,
    dependencies=[requires("sessions:manage")],
    summary="Sign out one session",
)
async def revoke_session(
    session_id: uuid.UUID, caller: CurrentCaller, request: Request, db: DatabaseDep
) -> Response:
    await db.run(
        lambda s: service.revoke_session(
            s, user=caller.user, session_id=session_id, client=client_of(request)
        )
    )
    return Response(status_code=204)


@router.post(
    "/me/password",
    status_code=204,
    dependencies=[requires("profile:write")],
    summary="Change password",
)
async def change_password(
    body: schemas.PasswordChangeIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    await db.run(
        lambda s: service.change_password(
            s,
            settings,
            user=caller.user,
            current=body.current_password,
            new=body.new_password,
            keep_session=caller.session_id,
            client=client_of(request),
        )
    )
    return Response(status_code=204)


@router.post(
    "/me/email-verification",
    status_code=202,
    dependencies=[requires("profile:read")],
    summary="Send the email-verification link again",
)
async def resend_verification(
    caller: CurrentCaller, db: DatabaseDep, settings: SettingsDep
) -> schemas.AcceptedOut:
    await db.run(lambda s: service.send_verification_email(s, settings, caller.user))
    return schemas.AcceptedOut()


@router.post(
    "/auth/verify-email",
    status_code=204,
    dependencies=[public()],
    summary="Confirm an email address",
)
async def verify_email(body: schemas.TokenIn, request: Request, db: DatabaseDep) -> Response:
    await db.run(lambda s: service.verify_email(s, token=body.token, client=client_of(request)))
    return Response(status_code=204)


@router.post(
    "/auth/password-reset/request",
    status_code=202,
    dependencies=[public()],
    summary="Email a password-reset link",
)
async def request_reset(
    body: schemas.PasswordResetRequestIn, request: Request, db: DatabaseDep, settings: SettingsDep
) -> schemas.AcceptedOut:
    await db.run(
        lambda s: service.request_password_reset(
            s, settings, email=body.email, client=client_of(request)
        )
    )
    return schemas.AcceptedOut()


@router.post(
    "/auth/password-reset", status_code=204, dependencies=[public()], summary="Set a new password"
)
async def reset_password(
    body: schemas.PasswordResetIn, request: Request, db: DatabaseDep, settings: SettingsDep
) -> Response:
    await db.run(
        lambda s: service.reset_password(
            s, settings, token=body.token, new_password=body.new_password, client=client_of(request)
        )
    )
    return Response(status_code=204)


@router.put(
    "/admin/users/{user_id}/role",
    dependencies=[requires("users:manage")],
    summary="Change a user's role (administrators)",
)
async def change_role(
    user_id: uuid.UUID,
    body: schemas.RoleChangeIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
) -> schemas.UserOut:
    user = await db.run(
        lambda s: service.change_role(
            s, actor=caller.user, user_id=user_id, role=body.role, client=client_of(request)
        )
    )
    return user_out(user)


__all__: list[Any] = ["router"]
