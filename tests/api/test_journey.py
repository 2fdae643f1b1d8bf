"""Issue 3's "done when", through the HTTP API alone: a new user signs up, passes sandbox KYC,
deposits, transfers to another user, withdraws, reads a balance that matches the ledger, and
gets a quote that is honoured."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.ledger.verify import verify_ledger
from tests.api.conftest import sign_up

API = "/api/v1"


async def _kyc(
    client: httpx.AsyncClient, headers: dict[str, str], last_name: str = "Lovelace"
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/kyc/submissions",
        headers=headers,
        json={
            "first_name": "Ada",
            "last_name": last_name,
            "date_of_birth": "1990-12-10",
            "country": "GB",
            "address": "12 St James's Square, London",
            "document_type": "passport",
            "document_number": "P1234567",
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _settled(
    client: httpx.AsyncClient, headers: dict[str, str], transaction_id: str
) -> dict[str, Any]:
    for _ in range(200):
        body = (await client.get(f"{API}/transactions/{transaction_id}", headers=headers)).json()
        if body["status"] in ("completed", "failed", "reversed"):
            return dict(body)
        await asyncio.sleep(0.05)
    raise AssertionError(f"transaction {transaction_id} did not settle: {body}")


async def _usd_available(client: httpx.AsyncClient, headers: dict[str, str]) -> Decimal:
    balances = (await client.get(f"{API}/balances", headers=headers)).json()
    banking_usd = [
        a for a in balances["assets"] if a["asset"] == "USD" and a["domain"] == "banking"
    ]
    return Decimal(banking_usd[0]["available"]) if banking_usd else Decimal(0)


async def test_a_new_user_banks_end_to_end(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    alice, bob = (
        await sign_up(client, name="Alice Example"),
        await sign_up(client, name="Bob Example"),
    )
    a, b = alice["headers"], bob["headers"]

    # KYC: tier 0 cannot move money; sandbox approval lifts the user to tier 1.
    refused = await client.post(
        f"{API}/banking/deposits", headers=a, json={"amount": "10.00", "currency": "USD"}
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "kyc_required"
    assert (await _kyc(client, a))["status"] == "approved"
    await _kyc(client, b)
    assert (await client.get(f"{API}/me", headers=a)).json()["kyc_tier"] == 1

    # A quote for a card deposit, honoured exactly.
    quote = await client.post(
        f"{API}/fees/quote",
        headers=a,
        json={"operation": "deposit", "amount": "500.00", "currency": "USD", "method": "card"},
    )
    assert quote.status_code == 201, quote.text
    quoted = quote.json()
    deposit = await client.post(
        f"{API}/banking/deposits",
        headers={**a, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "amount": "500.00",
            "currency": "USD",
            "method": "card",
            "quote_id": quoted["quote_id"],
        },
    )
    assert deposit.status_code == 201, deposit.text
    assert deposit.json()["status"] == "pending"
    assert deposit.json()["fee"] == quoted["total_fee"]
    settled = await _settled(client, a, deposit.json()["id"])
    assert settled["status"] == "completed"
    credited = Decimal("500.00") - Decimal(quoted["total_fee"])
    assert await _usd_available(client, a) == credited

    # A P2P transfer completes at once.
    transfer = await client.post(
        f"{API}/banking/transfers",
        headers={**a, "Idempotency-Key": str(uuid.uuid4())},
        json={"recipient_email": bob["email"], "amount": "120.00", "currency": "USD"},
    )
    assert transfer.status_code == 201, transfer.text
    assert transfer.json()["status"] == "completed" and transfer.json()["fee"] == "0.00"
    assert await _usd_available(client, b) == Decimal("120.00")

    # Bob withdraws to a linked bank account.
    bank = await client.post(
        f"{API}/banking/bank-accounts",
        headers=b,
        json={
            "holder_name": "Bob Example",
            "bank_name": "First Bank",
            "routing_number": "011000015",
            "account_number": "000123456789",
        },
    )
    assert bank.status_code == 201, bank.text
    withdrawal = await client.post(
        f"{API}/banking/withdrawals",
        headers={**b, "Idempotency-Key": str(uuid.uuid4())},
        json={"amount": "50.00", "currency": "USD", "bank_account_id": bank.json()["id"]},
    )
    assert withdrawal.status_code == 201, withdrawal.text
    fee = Decimal(withdrawal.json()["fee"])
    assert (await _settled(client, b, withdrawal.json()["id"]))["status"] == "completed"
    assert await _usd_available(client, b) == Decimal("120.00") - Decimal("50.00") - fee

    # Balances match the ledger, and history shows every movement.
    history = (await client.get(f"{API}/transactions", headers=a)).json()["items"]
    assert [t["type"] for t in history][:2] == ["transfer_out", "deposit"]
    async with engine.connect() as conn:
        report = await verify_ledger(conn)
    assert report.ok, report.summary()
