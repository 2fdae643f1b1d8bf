"""Role changes: administrators only, audited with both roles, and the user's old tokens end."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import sign_in, sign_up

API = "/api/v1"


async def _admin(client: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, object]:
    account = await sign_up(client)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = 'admin' WHERE email = :e"), {"e": account["email"]}
        )
    return {**account, **await sign_in(client, str(account["email"]))}


async def test_an_admin_changes_a_role_and_it_is_audited(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    admin, user = await _admin(client, engine), await sign_up(client)
    response = await client.put(
        f"{API}/admin/users/{user['user']['id']}/role",
        headers=admin["headers"],
        json={"role": "support"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "support"
    # The old token carried the old role: it no longer works; a new sign-in carries the new one.
    assert (await client.get(f"{API}/me", headers=user["headers"])).status_code == 401
    fresh = await sign_in(client, user["email"])
    assert (await client.get(f"{API}/me", headers=fresh["headers"])).json()["role"] == "support"
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT actor_id, details FROM audit_log WHERE action = 'user.role_change' AND subject_id = :s"
                ),
                {"s": user["user"]["id"]},
            )
        ).one()
    assert str(row.actor_id) == admin["user"]["id"]  # type: ignore[index]
    assert row.details == {"from": "customer", "to": "support"}


async def test_role_changes_are_refused_to_others_and_checked(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    admin, user = await _admin(client, engine), await sign_up(client)
    path = f"{API}/admin/users/{user['user']['id']}/role"
    assert (
        await client.put(path, headers=user["headers"], json={"role": "admin"})
    ).status_code == 403
    unknown = await client.put(path, headers=admin["headers"], json={"role": "superuser"})
    assert unknown.status_code == 422
    own = await client.put(
        f"{API}/admin/users/{admin['user']['id']}/role",
        headers=admin["headers"],
        json={"role": "customer"},
    )  # type: ignore[index]
    assert own.status_code == 409
    missing = await client.put(
        f"{API}/admin/users/00000000-0000-4000-8000-000000000000/role",
        headers=admin["headers"],
        json={"role": "support"},
    )
    assert missing.status_code == 404
