"""Fee quotes presented with a movement: charged exactly, used once, refused once expired."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.fees.service import create_quote
from diboas.identity import repository as users
from diboas.settings import Settings
from tests.banking.helpers import (
    API,
    balance,
    customer,
    settled,
    transaction_count,
)

DEPOSITS = f"{API}/banking/deposits"


async def _quote(
    sessions: SessionFactory, user_id: uuid.UUID, amount: str, *, method: str = "card"
) -> uuid.UUID:
    async def make(session: AsyncSession) -> uuid.UUID:
        user = await users.get(session, user_id)
        assert user is not None
        quote = await create_quote(
            session,
            Settings(env="test"),
            user=user,
            operation="deposit",
            amount=Decimal(amount),
            currency="USD",
            method=method,
        )
        return quote.id

    return await run_in_transaction(sessions, make)


async def test_a_quoted_fee_is_charged_exactly(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(client, engine)
    quote_id = await _quote(sessions, ada["id"], "100.00")
    # The schedule may change after a quote; the quote still holds. Simulate a promotion
    # recorded on the quote, so that a charge from the schedule would show.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE fee_quotes SET platform_fee = 0, total_fee = provider_fee + network_fee WHERE id = :id"
            ),
            {"id": quote_id},
        )
    response = await client.post(
        DEPOSITS,
        headers=ada["headers"],
        json={"amount": "100.00", "currency": "USD", "quote_id": str(quote_id)},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["fee"] == "3.20" and body["quote_id"] == str(quote_id)
    done = await settled(client, ada["headers"], body["id"])
    assert done["status"] == "completed"
    assert await balance(engine, ada["id"]) == Decimal("96.80")
    again = await client.post(
        DEPOSITS,
        headers=ada["headers"],
        json={"amount": "100.00", "currency": "USD", "quote_id": str(quote_id)},
    )
    assert again.status_code == 409  # a quote is used once


async def test_an_expired_quote_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(client, engine)
    quote_id = await _quote(sessions, ada["id"], "100.00")
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE fee_quotes SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": quote_id},
        )
    response = await client.post(
        DEPOSITS,
        headers=ada["headers"],
        json={"amount": "100.00", "currency": "USD", "quote_id": str(quote_id)},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "quote_expired"
    assert await transaction_count(engine, ada["id"]) == 0
