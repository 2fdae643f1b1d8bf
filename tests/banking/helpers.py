"""Helpers for banking tests over HTTP: verified customers, funding, balances, polling."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.ledger import service as ledger
from diboas.ledger.models import AccountKind, Domain, OwnerType
from tests.api.conftest import sign_up

API = "/api/v1"
# Routing numbers with a valid ABA check digit.
ROUTING = "011000015"
OTHER_ROUTING = "021000021"


async def customer(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    *,
    tier: int = 1,
    name: str = "Ada Lovelace",
) -> dict[str, Any]:
    """A signed-in user whose KYC is approved at ``tier`` (set in SQL: KYC is tested elsewhere)."""
    account = await sign_up(client, name=name)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET kyc_tier = :tier, kyc_status = :status WHERE email = :email"),
            {
                "tier": tier,
                "status": "approved" if tier > 0 else "none",
                "email": account["email"],
            },
        )
    account["id"] = uuid.UUID(account["user"]["id"])
    return account


async def fund(sessions: SessionFactory, user_id: uuid.UUID, amount: str) -> None:
    """Put money in a user's banking account straight from the platform's external account."""

    async def credit(session: Any) -> None:
        account = await ledger.customer_account(
            session, owner_type=OwnerType.USER, owner_id=user_id, domain=Domain.BANKING, asset="USD"
        )
        external = await ledger.platform_account(session, asset="USD", kind=AccountKind.EXTERNAL)
        await ledger.transfer(
            session, source=external, destination=account, amount=Decimal(amount), kind="test.fund"
        )

    await run_in_transaction(sessions, credit)


async def balance(engine: AsyncEngine, user_id: uuid.UUID, kind: str = "available") -> Decimal:
    """A user's banking USD balance of ``kind`` (available or held), zero without an account."""
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                text("""SELECT b.balance FROM balances b JOIN accounts a ON a.id = b.account_id
                         WHERE a.owner_type = 'user' AND a.owner_id = :id AND a.domain = 'banking'
                           AND a.asset = 'USD' AND a.kind = :kind"""),
                {"id": user_id, "kind": kind},
            )
        ).scalar()
    return Decimal(0) if value is None else Decimal(value)


async def transaction_count(engine: AsyncEngine, user_id: uuid.UUID) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text("SELECT count(*) FROM transactions WHERE user_id = :id"), {"id": user_id}
                )
            ).scalar_one()
        )


async def settled(
    client: httpx.AsyncClient, headers: dict[str, str], transaction_id: str, seconds: float = 30
) -> dict[str, Any]:
    """Poll a transaction until it is completed or failed (the in-process worker settles it)."""
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get(f"{API}/transactions/{transaction_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("completed", "failed"):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"transaction still {body['status']}: {body}")
        await asyncio.sleep(0.1)


async def link_account(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    account_number: str = "000123456789",
    routing_number: str = ROUTING,
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/banking/bank-accounts",
        headers=headers,
        json={
            "holder_name": "Ada Lovelace",
            "bank_name": "First Test Bank",
            "routing_number": routing_number,
            "account_number": account_number,
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
