"""A card deposit through the API runs through Stripe when a key is configured — here the
official SDK against a real local Stripe (localstripe); ACH stays on the bank-rails sandbox."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
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
WEBHOOK_SECRET = "whsec_diboas_test"


@pytest.fixture
async def stripe_client(
    database_url: URL, mailbox: tuple[object, int], localstripe: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for_tests(
        mailbox[1],
        stripe_api_key=SecretStr(LOCALSTRIPE_API_KEY),
        stripe_api_base=localstripe,
        stripe_webhook_secret=SecretStr(WEBHOOK_SECRET),
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


def _signed(payload: bytes, secret: str = WEBHOOK_SECRET) -> str:
    """A Stripe-Signature header as Stripe documents it: t=<unix time>,v1=HMAC-SHA256."""
    timestamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


async def test_a_signed_webhook_settles_a_3d_secure_deposit_once(
    stripe_client: httpx.AsyncClient, engine: AsyncEngine, localstripe: str
) -> None:
    account = await _approved(stripe_client, engine)
    auth = {"Authorization": f"Bearer {LOCALSTRIPE_API_KEY}"}
    async with httpx.AsyncClient(base_url=localstripe, headers=auth) as stripe_api:
        method = await stripe_api.post(
            "/v1/payment_methods",
            data={
                "type": "card",
                "card[number]": "4000002760003184",
                "card[exp_month]": "12",
                "card[exp_year]": "2030",
                "card[cvc]": "123",
            },
        )
        deposit = await stripe_client.post(
            f"{API}/banking/deposits",
            headers=account["headers"],
            json={"amount": "30.00", "currency": "USD", "payment_method": method.json()["id"]},
        )
        assert deposit.status_code == 201, deposit.text
        transaction_id = deposit.json()["id"]
        for _ in range(300):  # the job has asked Stripe: the payment waits for the customer
            stored = await _stored(engine, transaction_id)
            if stored.provider_reference:
                break
            await asyncio.sleep(0.05)
        reference = stored.provider_reference
        intent = (await stripe_api.get(f"/v1/payment_intents/{reference}")).json()
        assert intent["status"] == "requires_action"
        done = await stripe_api.post(
            f"/v1/payment_intents/{reference}/_authenticate",
            data={"client_secret": intent["client_secret"], "success": "true", "key": "pk_test_x"},
        )
        done.raise_for_status()
        paid = (await stripe_api.get(f"/v1/payment_intents/{reference}")).json()
    event = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "api_version": "2026-10-28",
            "created": int(time.time()),
            "data": {"object": paid},
        }
    ).encode()

    forged = await stripe_client.post(
        f"{API}/webhooks/stripe",
        content=event,
        headers={"Stripe-Signature": _signed(event, "whsec_wrong")},
    )
    assert forged.status_code == 400 and forged.json()["error"]["code"] == "webhook_refused"
    assert (
        await stripe_client.get(f"{API}/transactions/{transaction_id}", headers=account["headers"])
    ).json()["status"] == "processing"

    first = await stripe_client.post(
        f"{API}/webhooks/stripe", content=event, headers={"Stripe-Signature": _signed(event)}
    )
    assert first.status_code == 200 and first.json()["outcome"] == "settled"
    again = await stripe_client.post(
        f"{API}/webhooks/stripe", content=event, headers={"Stripe-Signature": _signed(event)}
    )
    assert again.json()["outcome"] == "already_settled"  # delivered twice: credited once
    done_deposit = (
        await stripe_client.get(f"{API}/transactions/{transaction_id}", headers=account["headers"])
    ).json()
    assert done_deposit["status"] == "completed"
    balances = (await stripe_client.get(f"{API}/balances", headers=account["headers"])).json()
    usd = next(a for a in balances["assets"] if a["asset"] == "USD")
    assert Decimal(usd["available"]) == Decimal("30.00") - Decimal(deposit.json()["fee"])


async def test_a_3d_secure_deposit_never_authenticated_is_canceled_in_bounded_time(
    database_url: URL, mailbox: tuple[object, int], engine: AsyncEngine, localstripe: str
) -> None:
    settings = settings_for_tests(
        mailbox[1],
        stripe_api_key=SecretStr(LOCALSTRIPE_API_KEY),
        stripe_api_base=localstripe,
        stripe_poll_interval_seconds=0.3,
        saga_customer_action_timeout_seconds=1.0,
    )
    app = create_app(settings, database_url=plain_url(database_url))
    async for client in _client(app):
        account = await _approved(client, engine)
        auth = {"Authorization": f"Bearer {LOCALSTRIPE_API_KEY}"}
        async with httpx.AsyncClient(base_url=localstripe, headers=auth) as stripe_api:
            method = await stripe_api.post(
                "/v1/payment_methods",
                data={
                    "type": "card",
                    "card[number]": "4000002760003184",  # always asks for 3-D Secure
                    "card[exp_month]": "12",
                    "card[exp_year]": "2030",
                    "card[cvc]": "123",
                },
            )
            deposit = await client.post(
                f"{API}/banking/deposits",
                headers=account["headers"],
                json={"amount": "30.00", "currency": "USD", "payment_method": method.json()["id"]},
            )
            assert deposit.status_code == 201, deposit.text
            done = await _settled(client, account["headers"], deposit.json()["id"])
            reference = (await _stored(engine, deposit.json()["id"])).provider_reference
            intent = (await stripe_api.get(f"/v1/payment_intents/{reference}")).json()
        assert (done["status"], done["failure_code"]) == ("failed", "canceled")
        assert intent["status"] == "canceled"  # abandoned at Stripe too: it can never be paid
        steps = [step["state"] for step in done["steps"]]
        assert steps == ["accepted", "provider_requested", "awaiting_customer", "failed"]
        balances = (await client.get(f"{API}/balances", headers=account["headers"])).json()
        assert balances["total_usd"] == "0.00"


async def test_a_webhook_stripe_cannot_be_asked_about_is_refused_for_redelivery(
    database_url: URL, mailbox: tuple[object, int]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on: Stripe "down"
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings = settings_for_tests(
        mailbox[1],
        stripe_api_key=SecretStr(LOCALSTRIPE_API_KEY),
        stripe_api_base=closed,
        stripe_webhook_secret=SecretStr(WEBHOOK_SECRET),
    )
    app = create_app(settings, database_url=plain_url(database_url))
    event = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": "payment_intent.succeeded",
            "api_version": "2026-10-28",
            "created": int(time.time()),
            "data": {"object": {"id": "pi_unknown", "object": "payment_intent"}},
        }
    ).encode()
    async for client in _client(app):
        answer = await client.post(
            f"{API}/webhooks/stripe", content=event, headers={"Stripe-Signature": _signed(event)}
        )
    # Not acknowledged (Stripe delivers it again later), in the one error format.
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "provider_unavailable"
