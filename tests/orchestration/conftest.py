"""Fault tests: card deposits through the API, through a fault-injecting proxy, to a real
local Stripe (localstripe); every test checks one charge, one credit and a clean ledger."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.db.urls import plain_url
from diboas.ledger.verify import verify_ledger
from tests.api.conftest import _client, mailbox, settings_for_tests
from tests.banking.helpers import customer
from tests.orchestration.fault_proxy import FaultProxy
from tests.providers.conftest import LOCALSTRIPE_API_KEY, localstripe

__all__ = ["localstripe", "mailbox"]

API = "/api/v1"
WEBHOOK_SECRET = "whsec_diboas_faults"
# The Stripe client gives up after this long; the proxy's slow faults take longer.
CLIENT_TIMEOUT = 1.0


@pytest.fixture
async def proxy(localstripe: str) -> AsyncIterator[FaultProxy]:
    faults = FaultProxy(localstripe, slow_seconds=CLIENT_TIMEOUT * 3)
    await faults.start()
    yield faults
    await faults.stop()


def fault_settings(smtp_port: int, proxy: FaultProxy, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "stripe_api_key": SecretStr(LOCALSTRIPE_API_KEY),
        "stripe_api_base": proxy.url,
        "stripe_webhook_secret": SecretStr(WEBHOOK_SECRET),
        "stripe_timeout_seconds": CLIENT_TIMEOUT,
        "saga_reconcile_delay_seconds": 0.3,
    }
    values.update(overrides)
    return settings_for_tests(smtp_port, **values)


@pytest.fixture
async def faulty_client(
    database_url: URL, mailbox: tuple[object, int], proxy: FaultProxy
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(fault_settings(mailbox[1], proxy), database_url=plain_url(database_url))
    async for client in _client(app):
        yield client


async def approved_user(client: httpx.AsyncClient, engine: AsyncEngine) -> dict[str, Any]:
    """A signed-in customer whose KYC is approved (tier 1)."""
    return await customer(client, engine)


async def card_deposit(
    client: httpx.AsyncClient, account: dict[str, Any], amount: str = "50.00"
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/banking/deposits",
        headers={**account["headers"], "Idempotency-Key": str(uuid.uuid4())},
        json={"amount": amount, "currency": "USD", "payment_method": "pm_card_visa"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def final_state(
    client: httpx.AsyncClient, account: dict[str, Any], transaction_id: str, seconds: float = 30
) -> dict[str, Any]:
    """The transaction once its saga is over (with its steps)."""
    body: dict[str, Any] = {}
    for _ in range(int(seconds / 0.1)):
        body = (
            await client.get(f"{API}/transactions/{transaction_id}", headers=account["headers"])
        ).json()
        if body["status"] in ("completed", "failed", "reversed"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"the saga did not finish: {body}")


async def charges_for(localstripe_url: str, transaction_id: str) -> list[dict[str, Any]]:
    """The PaymentIntents Stripe holds for a deposit (found by the key in their metadata)."""
    key = f"diboas:deposit:{transaction_id}"
    auth = {"Authorization": f"Bearer {LOCALSTRIPE_API_KEY}"}
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    async with httpx.AsyncClient(base_url=localstripe_url, headers=auth) as stripe_api:
        while True:
            page = (await stripe_api.get("/v1/payment_intents", params=params)).json()
            found += [
                intent
                for intent in page["data"]
                if (intent.get("metadata") or {}).get("diboas_idempotency_key") == key
            ]
            if not page["has_more"]:
                return found
            params["starting_after"] = page["data"][-1]["id"]


async def usd_available(client: httpx.AsyncClient, account: dict[str, Any]) -> Decimal:
    balances = (await client.get(f"{API}/balances", headers=account["headers"])).json()
    usd = [a for a in balances["assets"] if a["asset"] == "USD" and a["domain"] == "banking"]
    return Decimal(usd[0]["available"]) if usd else Decimal(0)


async def assert_ledger_clean(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        report = await verify_ledger(conn)
    assert report.ok, report


def states(transaction: dict[str, Any]) -> list[str]:
    return [step["state"] for step in transaction["steps"]]
