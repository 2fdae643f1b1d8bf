"""Vault faults through the HTTP API with the in-process worker: a node out of reach is
retried (the deposit waits, then settles once); a deposit sent whose outcome is unknown is
parked for an operator with the money still held; a redemption the vault refuses frees the
shares and moves no money."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from tests.api.conftest import Mailbox
from tests.api.test_admin import signed_in_as
from tests.banking.helpers import balance, customer, fund
from tests.defi.helpers import (
    API,
    POSITIONS,
    RECONCILE,
    Clock,
    FlakyVault,
    LostDepositVault,
    RedeemRevertsVault,
    account_balance,
    defi_client,
    services,
    settled,
    vaults,
)
from tests.orchestration.conftest import assert_ledger_clean

INVEST = {"strategy_id": "usdc-core", "amount": "100.00"}


async def test_an_unreachable_vault_is_retried_and_settles_once(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    flaky = FlakyVault(apy=Decimal(0), clock=Clock(), outages=2)
    async with defi_client(database_url, mailbox[1], services(vaults(flaky))) as (client, _):
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "200.00")
        response = await client.post(POSITIONS, headers=ada["headers"], json=INVEST)
        assert response.status_code == 201, response.text
        done = await settled(client, ada["headers"], response.json()["id"])
        assert done["status"] == "completed", done
        assert [s["state"] for s in done["steps"]] == [
            "accepted",
            "provider_requested",
            "retrying",
            "provider_requested",
            "retrying",
            "provider_requested",
            "settled",
        ]
        assert flaky.outages == 0
        assert await flaky.total_shares() == Decimal("100")  # deposited once
        assert await account_balance(engine, ada["id"], "defi", "USDC") == Decimal("100")
        await assert_ledger_clean(engine)


async def test_a_deposit_of_unknown_outcome_is_parked_with_the_money_held(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    lost = LostDepositVault(apy=Decimal(0), clock=Clock())
    async with defi_client(database_url, mailbox[1], services(vaults(lost))) as (client, _):
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "200.00")
        response = await client.post(POSITIONS, headers=ada["headers"], json=INVEST)
        assert response.status_code == 201, response.text
        transaction_id = response.json()["id"]
        path = f"{API}/transactions/{transaction_id}"
        for _ in range(300):
            body = (await client.get(path, headers=ada["headers"])).json()
            if body["saga_state"] == "ambiguous":
                break
            await asyncio.sleep(0.1)
        assert body["saga_state"] == "ambiguous" and body["status"] == "processing", body
        # Neither credited nor released: the money stays held until an operator knows.
        assert await balance(engine, ada["id"], "held") == Decimal("101.11")
        assert await account_balance(engine, ada["id"], "defi", "USDC") == 0
        admin = await signed_in_as(client, engine, "admin")
        report = (await client.get(RECONCILE, headers=admin["headers"])).json()
        assert report["ok"] is False and report["unfinished_batches"]
        await assert_ledger_clean(engine)


async def test_a_refused_redemption_frees_the_shares_and_moves_no_money(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    vault = RedeemRevertsVault(apy=Decimal(0), clock=Clock())
    async with defi_client(database_url, mailbox[1], services(vaults(vault))) as (client, _):
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "200.00")
        response = await client.post(POSITIONS, headers=ada["headers"], json=INVEST)
        assert response.status_code == 201, response.text
        deposit = await settled(client, ada["headers"], response.json()["id"])
        assert deposit["status"] == "completed"
        cash = await balance(engine, ada["id"])
        position_id = response.json()["position_id"]
        out = await client.post(f"{POSITIONS}/{position_id}/withdraw", headers=ada["headers"])
        assert out.status_code == 201, out.text
        done = await settled(client, ada["headers"], out.json()["id"])
        assert done["status"] == "failed" and done["failure_code"] == "chain_tx_reverted"
        assert [s["state"] for s in done["steps"]] == [
            "accepted",
            "provider_requested",
            "compensated",
        ]
        assert await balance(engine, ada["id"]) == cash
        assert await account_balance(engine, ada["id"], "defi", "USDC") == Decimal("100")
        [position] = (await client.get(POSITIONS, headers=ada["headers"])).json()["items"]
        assert position["status"] == "open" and position["withdrawing_shares"] == "0.000000"
        await assert_ledger_clean(engine)
