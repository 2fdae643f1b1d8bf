"""Linked bank accounts over HTTP: encrypted at rest, shown masked, refused when linked
twice, another user's is 404, removal keeps the row, malformed numbers never echoed."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.banking.service.common import bank_context
from diboas.kit.crypto import KeyRing, Sealed
from tests.api.conftest import settings_for_tests
from tests.banking.helpers import API, customer, link_account


async def test_a_bank_account_is_encrypted_at_rest_and_shown_masked(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada = await customer(client, engine)
    number = "00987654321"
    linked = await link_account(client, ada["headers"], account_number=number)
    assert linked["account_number_masked"] == "••••4321"
    assert number not in str(linked)
    listed = await client.get(f"{API}/banking/bank-accounts", headers=ada["headers"])
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json()] == [linked["id"]]
    assert number not in listed.text

    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("""SELECT account_number_ciphertext, key_version, account_last4, fingerprint
                          FROM bank_accounts WHERE id = :id"""),
                {"id": linked["id"]},
            )
        ).one()
        everything = (
            await conn.execute(
                text("SELECT row_to_json(b)::text FROM bank_accounts b WHERE id = :id"),
                {"id": linked["id"]},
            )
        ).scalar_one()
    stored = bytes(row.account_number_ciphertext)
    assert number.encode() not in stored and number not in everything
    assert row.key_version == 1 and row.account_last4 == "4321"
    keys = KeyRing.from_settings(settings_for_tests(25))
    opened = keys.decrypt(
        Sealed(row.key_version, stored), context=bank_context(uuid.UUID(linked["id"]), ada["id"])
    )
    assert opened == number.encode()


async def test_the_same_bank_account_cannot_be_linked_twice(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada, bob = await customer(client, engine), await customer(client, engine)
    first = await link_account(client, ada["headers"], account_number="123456789012")
    again = await client.post(
        f"{API}/banking/bank-accounts",
        headers=ada["headers"],
        json={
            "holder_name": "A. Lovelace",
            "bank_name": "Same Bank, other label",
            "routing_number": "011000015",
            "account_number": "123456789012",
        },
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "bank_account_exists"
    assert "123456789012" not in again.text
    # The same number at another bank is another account; another user may link it too.
    await link_account(
        client, ada["headers"], account_number="123456789012", routing_number="021000021"
    )
    await link_account(client, bob["headers"], account_number="123456789012")
    # Once removed, it can be linked again.
    removed = await client.delete(
        f"{API}/banking/bank-accounts/{first['id']}", headers=ada["headers"]
    )
    assert removed.status_code == 204
    await link_account(client, ada["headers"], account_number="123456789012")


async def test_another_users_bank_account_is_404_and_removal_keeps_the_row(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada, eve = await customer(client, engine), await customer(client, engine)
    linked = await link_account(client, ada["headers"])
    stolen = await client.delete(
        f"{API}/banking/bank-accounts/{linked['id']}", headers=eve["headers"]
    )
    assert stolen.status_code == 404
    assert (await client.get(f"{API}/banking/bank-accounts", headers=eve["headers"])).json() == []
    removed = await client.delete(
        f"{API}/banking/bank-accounts/{linked['id']}", headers=ada["headers"]
    )
    assert removed.status_code == 204
    assert (await client.get(f"{API}/banking/bank-accounts", headers=ada["headers"])).json() == []
    twice = await client.delete(
        f"{API}/banking/bank-accounts/{linked['id']}", headers=ada["headers"]
    )
    assert twice.status_code == 404
    async with engine.connect() as conn:
        status = (
            await conn.execute(
                text("SELECT status FROM bank_accounts WHERE id = :id"), {"id": linked["id"]}
            )
        ).scalar_one()
    assert status == "removed"


@pytest.mark.parametrize(
    "change",
    [
        {"routing_number": "011000016"},  # wrong check digit
        {"routing_number": "01100001"},
        {"routing_number": "01100001a"},
        {"account_number": "123"},
        {"account_number": "123456789012345678"},
        {"account_number": "12345-678"},
        {"account_number": 123456789},
        {"holder_name": "Ada\x00Lovelace"},
        {"holder_name": ""},
        {"status": "active"},
    ],
)
async def test_malformed_bank_accounts_are_422_without_echoing_the_number(
    client: httpx.AsyncClient, engine: AsyncEngine, change: dict[str, object]
) -> None:
    ada = await customer(client, engine)
    payload = {
        "holder_name": "Ada Lovelace",
        "bank_name": "First Test Bank",
        "routing_number": "011000015",
        "account_number": "55501234567",
        **change,
    }
    response = await client.post(
        f"{API}/banking/bank-accounts", headers=ada["headers"], json=payload
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert "55501234567" not in response.text
    assert (await client.get(f"{API}/banking/bank-accounts", headers=ada["headers"])).json() == []
