"""Idempotency-Key on money movements over HTTP: a replay gives the first answer (with its
status code) and moves money once; a burst with one key has one effect; the same key with
another body is refused."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from tests.banking.helpers import (
    API,
    balance,
    customer,
    fund,
    transaction_count,
)

DEPOSITS = f"{API}/banking/deposits"
TRANSFERS = f"{API}/banking/transfers"


async def test_a_replay_returns_the_first_answer_and_moves_money_once(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada, bob = await customer(client, engine), await customer(client, engine)
    await fund(sessions, ada["id"], "50.00")
    headers = {**ada["headers"], "Idempotency-Key": f"transfer-{uuid.uuid4()}"}
    payload = {"recipient_email": bob["email"], "amount": "20.00", "currency": "USD"}
    first = await client.post(TRANSFERS, headers=headers, json=payload)
    again = await client.post(TRANSFERS, headers=headers, json=payload)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await balance(engine, ada["id"]) == Decimal("30.00")
    assert await balance(engine, bob["id"]) == Decimal("20.00")
    assert await transaction_count(engine, ada["id"]) == 1


async def test_twenty_concurrent_requests_with_one_key_have_one_effect(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada, bob = await customer(client, engine), await customer(client, engine)
    await fund(sessions, ada["id"], "100.00")
    headers = {**ada["headers"], "Idempotency-Key": f"burst-{uuid.uuid4()}"}
    payload = {"recipient_email": bob["email"], "amount": "7.00", "currency": "USD"}
    responses = await asyncio.gather(
        *(client.post(TRANSFERS, headers=headers, json=payload) for _ in range(20))
    )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, statuses
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_key_in_flight"
    assert await balance(engine, ada["id"]) == Decimal("93.00")
    assert await balance(engine, bob["id"]) == Decimal("7.00")
    assert await transaction_count(engine, ada["id"]) == 1


async def test_a_key_reused_with_another_body_is_422(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada = await customer(client, engine)
    headers = {**ada["headers"], "Idempotency-Key": f"deposit-{uuid.uuid4()}"}
    first = await client.post(
        DEPOSITS, headers=headers, json={"amount": "10.00", "currency": "USD"}
    )
    assert first.status_code == 201
    other = await client.post(
        DEPOSITS, headers=headers, json={"amount": "11.00", "currency": "USD"}
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await transaction_count(engine, ada["id"]) == 1


async def test_a_refusal_is_replayed_with_its_status_code(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada, bob = await customer(client, engine), await customer(client, engine)
    headers = {**ada["headers"], "Idempotency-Key": f"refused-{uuid.uuid4()}"}
    payload = {"recipient_email": bob["email"], "amount": "5.00", "currency": "USD"}
    first = await client.post(TRANSFERS, headers=headers, json=payload)
    assert first.status_code == 422
    await fund(sessions, ada["id"], "50.00")
    # The same request again is the same request: it gets the first answer, not a new try.
    again = await client.post(TRANSFERS, headers=headers, json=payload)
    assert again.status_code == 422
    error = again.json()["error"]
    assert error["code"] == "insufficient_funds"
    assert error["request_id"] == again.headers["x-request-id"]
    assert await balance(engine, bob["id"]) == 0
