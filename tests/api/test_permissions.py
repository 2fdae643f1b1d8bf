"""Deny by default: every route of the app declares its permission, and roles are enforced."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app, iter_api_routes
from diboas.identity.dependencies import PUBLIC, permission_of
from diboas.identity.roles import ROLE_PERMISSIONS, Role, has_permission
from diboas.settings import Settings
from tests.api.conftest import sign_in, sign_up

# Routes that may be reached without signing in, and nothing else.
EXPECTED_PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/auth/register",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
    "/api/v1/auth/verify-email",
    "/api/v1/webhooks/stripe",
    "/api/v1/auth/password-reset/request",
    "/api/v1/auth/password-reset",
    "/api/v1/fees/schedule",  # the marketing site shows the fee schedule
}


def _declared(route: object) -> list[str]:
    dependant = route.dependant  # type: ignore[attr-defined]
    return [p for p in (permission_of(d.call) for d in dependant.dependencies) if p is not None]


def test_every_route_declares_exactly_one_permission() -> None:
    app = create_app(Settings(env="test"), database_url="postgresql://postgres@127.0.0.1:9/none")
    routes = iter_api_routes(app)
    assert len(routes) > 10
    missing = [f"{sorted(r.methods)} {path}" for path, r in routes if len(_declared(r)) != 1]
    assert missing == [], f"routes without exactly one permission: {missing}"
    public = {path for path, r in routes if _declared(r) == [PUBLIC]}
    assert public == EXPECTED_PUBLIC
    known = set().union(*ROLE_PERMISSIONS.values()) | {PUBLIC}
    unknown = {p for _, r in routes for p in _declared(r)} - known
    assert unknown == set(), f"permissions no role grants: {unknown}"


def test_unknown_roles_grant_nothing() -> None:
    assert not has_permission("superuser", "profile:read")
    assert has_permission(Role.ADMIN, "admin:ledger")
    assert not has_permission(Role.CUSTOMER, "admin:ledger")
    assert not has_permission(Role.SUPPORT, "banking:transfer")


@pytest.mark.parametrize(("role", "status"), [("customer", 204), ("support", 403)])
async def test_a_role_without_the_permission_is_403(
    client: httpx.AsyncClient, engine: AsyncEngine, role: str, status: int
) -> None:
    account = await sign_up(client)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = :r WHERE email = :e"), {"r": role, "e": account["email"]}
        )
    fresh = await sign_in(client, account["email"])  # the role travels in the new token
    response = await client.post(
        "/api/v1/me/password",
        headers=fresh["headers"],
        json={
            "current_password": "correct-horse-battery-staple",
            "new_password": "another-good-passphrase-1",
        },
    )
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "forbidden"
