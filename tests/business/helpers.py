"""Helpers for business tests over HTTP: organisations, members, keys, funded treasuries."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.db.engine import SessionFactory
from diboas.db.urls import plain_url
from tests.api.conftest import settings_for_tests
from tests.banking.helpers import customer, fund

BUSINESS = "/api/v1/business"
OUTSIDE_IP = "203.0.113.9"


def org_path(organisation_id: str, tail: str = "") -> str:
    return f"{BUSINESS}/organisations/{organisation_id}{tail}"


async def create_organisation(
    client: httpx.AsyncClient, headers: dict[str, str], name: str = "Acme Ltd"
) -> dict[str, Any]:
    response = await client.post(f"{BUSINESS}/organisations", headers=headers, json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def add_member(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    organisation_id: str,
    email: str,
    role: str,
) -> httpx.Response:
    return await client.post(
        org_path(organisation_id, "/members"), headers=headers, json={"email": email, "role": role}
    )


async def create_key(
    client: httpx.AsyncClient, headers: dict[str, str], organisation_id: str, scopes: list[str]
) -> dict[str, Any]:
    response = await client.post(
        org_path(organisation_id, "/api-keys"),
        headers=headers,
        json={"name": "payroll system", "scopes": scopes},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def key_headers(key: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


async def funded_organisation(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    sessions: SessionFactory,
    amount: str = "500.00",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A verified admin and their organisation whose treasury holds ``amount`` USD (funded
    from the admin's own balance through the API)."""
    admin = await customer(client, engine)
    await fund(sessions, admin["id"], amount)
    organisation = await create_organisation(client, admin["headers"])
    response = await client.post(
        org_path(organisation["id"], "/treasury/fundings"),
        headers=admin["headers"],
        json={"amount": amount, "currency": "USD"},
    )
    assert response.status_code == 201, response.text
    return admin, organisation


def outside_client(app_client: httpx.AsyncClient, ip: str = OUTSIDE_IP) -> httpx.AsyncClient:
    """A client on the same app whose requests come from ``ip``."""
    transport = app_client._transport  # the ASGI transport of the same app
    assert isinstance(transport, httpx.ASGITransport)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=transport.app, client=(ip, 123)),
        base_url="http://testserver",
    )


def business_app(database_url: URL, smtp_port: int, **overrides: Any) -> Any:
    return create_app(
        settings_for_tests(smtp_port, **overrides), database_url=plain_url(database_url)
    )
