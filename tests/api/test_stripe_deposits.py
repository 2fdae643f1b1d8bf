"""A card deposit through the API runs through Stripe when a key is configured — here the
official SDK against a real local Stripe (localstripe); ACH stays on the bank-rails sandbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.db.urls import plain_url
from tests.api.conftest import _client, settings_for_tests, sign_up
from tests.providers.conftest import LOCALSTRIPE_API_KEY, localstripe

__all__ = ["localstripe"]

API = "/api/v1"


@pytest.fixture
async def stripe_client(
    database_url: URL, mailbox: tuple[object, int], localstripe: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for_tests(
        mailbox[1], stripe_api_key=SecretStr(LOCALSTRIPE_API_KEY), stripe_api_base=localstripe
    )
    app = create_app(settings, database_url=plain_url(database_url))
    async for client in _client(app):
        yield client


async def _approved(client: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, Any]:
    account = await sign_up(client)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET kyc_tier = 1, kyc_status = 'approved' WHERE email = :e"),
            {"e": account["email"]},
        )
    return account


async def _settled(
    client: httpx.AsyncClient, headers: dict[str, str], transaction_id: str
) -> dict[str, Any]:
    for _ in range(300):
        body: dict[str, Any] = (
            await client.get(f"{API}/transactions/{transaction_id}", headers=headers)
        ).json()
        if body["status"] in ("completed", "failed"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"not settled: {body}")


async def _stored(engine: AsyncEngine, transaction_id: str) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(
                text("SELECT provider, provider_reference FROM transactions WHERE id = :id"),
                {"id": uuid.UUID(transaction_id)},
            )
        ).one()


async def test_a_card_deposit_is_charged_through_stripe(
    stripe_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    account = await _approved(stripe_client, engine)
    deposit = await stripe_client.post(
        f"{API}/banking/deposits",
        headers={**account["headers"], "Idempotency-Key": str(uuid.uuid4())},
        json={"amount": "40.00", "currency": "USD", "payment_method": "pm_card_visa"},
    )
    assert deposit.status_code == 201, deposit.text
    done = await _settled(stripe_client, account["headers"], deposit.json()["id"])
    assert done["status"] == "completed"
    stored = await _stored(engine, deposit.json()["id"])
    assert stored.provider == "stripe" and stored.provider_reference.startswith("pi_")
    balances = (await stripe_client.get(f"{API}/balances", headers=account["headers"])).json()
    usd = next(a for a in balances["assets"] if a["asset"] == "USD")
    assert Decimal(usd["available"]) == Decimal("40.00") - Decimal(deposit.json()["fee"])


async def test_a_card_stripe_declines_fails_the_deposit(
    stripe_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    account = await _approved(stripe_client, engine)
    deposit = await stripe_client.post(
        f"{API}/banking/deposits",
        headers=account["headers"],
        json={"amount": "40.00", "currency": "USD", "payment_method": "pm_card_chargeCustomerFail"},
    )
    assert deposit.status_code == 201, deposit.text
    done = await _settled(stripe_client, account["headers"], deposit.json()["id"])
    assert done["status"] == "failed" and done["failure_code"]
    balances = (await stripe_client.get(f"{API}/balances", headers=account["headers"])).json()
    assert balances["total_usd"] == "0.00"
