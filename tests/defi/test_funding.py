"""Deposit-and-invest as one request: a card deposit pays for the investment; the whole
chain (card deposit saga, hold, batch, vault) completes, or — the card declined — the
investment fails with nothing held and nothing moved."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import Mailbox
from tests.banking.helpers import balance, customer, link_account
from tests.defi.helpers import API, POSITIONS, account_balance, defi_client, services, settled
from tests.orchestration.conftest import assert_ledger_clean


async def test_a_card_deposit_pays_for_the_investment(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine
) -> None:
    async with defi_client(database_url, mailbox[1], services(), defi_funding_poll_seconds=0.2) as (
        client,
        _,
    ):
        ada = await customer(client, engine)  # no money in banking
        headers = ada["headers"]
        response = await client.post(
            POSITIONS,
            headers=headers,
            json={"strategy_id": "usdc-core", "amount": "100.00", "funding": {"method": "card"}},
        )
        assert response.status_code == 201, response.text
        assert response.json()["fee"] == "1.11"  # 0.50 platform + 0.61 gas
        done = await settled(client, headers, response.json()["id"])
        assert done["status"] == "completed", done
        states = [s["state"] for s in done["steps"]]
        assert states == [
            "accepted",
            "provider_requested",  # the card deposit
            "provider_requested",  # funded: amount + fee + gas held
            "provider_requested",  # the vault deposit (batch)
            "settled",
        ]
        history = (await client.get(f"{API}/transactions", headers=headers)).json()["items"]
        deposit = next(t for t in history if t["type"] == "deposit")
        assert deposit["status"] == "completed"
        assert done["steps"][1]["detail"]["funding"] == deposit["id"]
        # The deposit, less its own fee, covered the investment; at most a cent or two is left.
        left = Decimal(deposit["amount"]) - Decimal(deposit["fee"]) - Decimal("101.11")
        assert Decimal(0) <= left <= Decimal("0.02")
        assert await balance(engine, ada["id"]) == left
        assert await balance(engine, ada["id"], "held") == 0
        assert await account_balance(engine, ada["id"], "defi", "USDC") == Decimal("100")
        await assert_ledger_clean(engine)


async def test_a_declined_card_fails_the_investment_and_moves_nothing(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine
) -> None:
    async with defi_client(database_url, mailbox[1], services(), defi_funding_poll_seconds=0.2) as (
        client,
        _,
    ):
        ada = await customer(client, engine)
        headers = ada["headers"]
        funding = {"method": "card", "payment_method": "pm_card_chargeDeclined"}
        response = await client.post(
            POSITIONS,
            headers=headers,
            json={"strategy_id": "usdc-core", "amount": "100.00", "funding": funding},
        )
        assert response.status_code == 201, response.text
        done = await settled(client, headers, response.json()["id"])
        assert done["status"] == "failed" and done["failure_code"] == "funding_failed", done
        assert [s["state"] for s in done["steps"]] == ["accepted", "provider_requested", "failed"]
        assert await balance(engine, ada["id"]) == 0
        assert await balance(engine, ada["id"], "held") == 0
        assert await account_balance(engine, ada["id"], "defi", "USDC") == 0
        [position] = (await client.get(POSITIONS, headers=headers)).json()["items"]
        assert position["status"] == "failed" and position["accrued_yield"] == "0.000000"
        await assert_ledger_clean(engine)


async def test_an_ach_debit_pays_for_the_investment(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine
) -> None:
    async with defi_client(database_url, mailbox[1], services(), defi_funding_poll_seconds=0.2) as (
        client,
        _,
    ):
        ada = await customer(client, engine)
        headers = ada["headers"]
        account = await link_account(client, headers)
        funding = {"method": "ach", "bank_account_id": account["id"]}
        response = await client.post(
            POSITIONS,
            headers=headers,
            json={"strategy_id": "usdc-core", "amount": "100.00", "funding": funding},
        )
        assert response.status_code == 201, response.text
        done = await settled(client, headers, response.json()["id"], seconds=60)
        assert done["status"] == "completed", done
        # ACH is free: the debit is exactly amount + fee + gas, and nothing is left over.
        history = (await client.get(f"{API}/transactions", headers=headers)).json()["items"]
        deposit = next(t for t in history if t["type"] == "deposit")
        assert (deposit["amount"], deposit["fee"], deposit["method"]) == ("101.11", "0.00", "ach")
        assert await balance(engine, ada["id"]) == 0
        assert await account_balance(engine, ada["id"], "defi", "USDC") == Decimal("100")
        await assert_ledger_clean(engine)
