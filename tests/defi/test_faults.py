"""Vault faults through the HTTP API with the in-process worker: a node out of reach is
retried (the deposit waits, then settles once); a deposit sent whose outcome is unknown is
parked for an operator with the money still held; a redemption the vault refuses frees the
shares and moves no money."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from diboas.defi.protocols import OMNIBUS
from diboas.providers.defi import SandboxVault
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
    RedeemLostVault,
    RedeemRevertsVault,
    account_balance,
    defi_client,
    saga_state,
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
        body = await saga_state(client, ada["headers"], transaction_id, "ambiguous")
        assert body["saga_state"] == "ambiguous" and body["status"] == "processing", body
        # Neither credited nor released: the money stays held until an operator knows.
        assert await balance(engine, ada["id"], "held") == Decimal("101.11")
        assert await account_balance(engine, ada["id"], "defi", "USDC") == 0
        admin = await signed_in_as(client, engine, "admin")
        report = (await client.get(RECONCILE, headers=admin["headers"])).json()
        assert report["ok"] is False and report["unfinished_batches"]
        [batch_id] = [
            b for b in report["unfinished_batches"] if b == body["steps"][1]["detail"]["batch_id"]
        ]

        # The operator finds the deposit never reached the vault: the hold is released.
        resolve = f"{API}/admin/defi/batches/{batch_id}/resolve"
        assert (
            await client.post(resolve, headers=ada["headers"], json={"outcome": "not_deposited"})
        ).status_code == 403
        bad = await client.post(resolve, headers=admin["headers"], json={"outcome": "deposited"})
        assert bad.status_code == 422
        resolved = await client.post(
            resolve, headers=admin["headers"], json={"outcome": "not_deposited"}
        )
        assert resolved.status_code == 200 and resolved.json() == {"outcome": "compensated"}
        done = await settled(client, ada["headers"], transaction_id)
        assert done["status"] == "failed" and done["saga_state"] == "compensated"
        assert await balance(engine, ada["id"]) == Decimal("200.00")
        assert await balance(engine, ada["id"], "held") == 0
        again = await client.post(
            resolve, headers=admin["headers"], json={"outcome": "not_deposited"}
        )
        assert again.status_code == 409
        await assert_ledger_clean(engine)


async def test_an_operator_settles_a_batch_that_did_reach_the_vault(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    lost = LostDepositVault(apy=Decimal(0), clock=Clock())
    async with defi_client(database_url, mailbox[1], services(vaults(lost))) as (client, app):
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "200.00")
        response = await client.post(POSITIONS, headers=ada["headers"], json=INVEST)
        assert response.status_code == 201, response.text
        body = await saga_state(client, ada["headers"], response.json()["id"], "ambiguous")
        batch_id = body["steps"][1]["detail"]["batch_id"]
        # The transaction was mined after all: the vault holds the omnibus wallet's shares.
        omnibus = app.state.services[OMNIBUS]
        move = await SandboxVault.deposit(lost, omnibus, Decimal("100"))
        admin = await signed_in_as(client, engine, "admin")
        resolved = await client.post(
            f"{API}/admin/defi/batches/{batch_id}/resolve",
            headers=admin["headers"],
            json={"outcome": "deposited", "shares": str(move.shares)},
        )
        assert resolved.status_code == 200 and resolved.json() == {"outcome": "settled"}
        done = await settled(client, ada["headers"], response.json()["id"])
        assert done["status"] == "completed" and done["fee"] == "0.50"  # no gas charged
        assert await balance(engine, ada["id"]) == Decimal("99.50")
        assert await account_balance(engine, ada["id"], "defi", "USDC") == Decimal("100")
        await assert_ledger_clean(engine)


async def test_an_operator_settles_a_redemption_of_unknown_outcome(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    vault = RedeemLostVault(apy=Decimal(0), clock=Clock())
    async with defi_client(database_url, mailbox[1], services(vaults(vault))) as (client, app):
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "200.00")
        response = await client.post(POSITIONS, headers=ada["headers"], json=INVEST)
        assert (await settled(client, ada["headers"], response.json()["id"]))[
            "status"
        ] == "completed"
        cash = await balance(engine, ada["id"])
        out = await client.post(
            f"{POSITIONS}/{response.json()['position_id']}/withdraw", headers=ada["headers"]
        )
        assert out.status_code == 201, out.text
        await saga_state(client, ada["headers"], out.json()["id"], "ambiguous")
        admin = await signed_in_as(client, engine, "admin")
        report = (await client.get(RECONCILE, headers=admin["headers"])).json()
        assert out.json()["id"] in report["ambiguous_withdrawals"]
        # It was mined: the vault paid the omnibus wallet.
        move = await SandboxVault.redeem(vault, app.state.services[OMNIBUS], Decimal("100"))
        resolved = await client.post(
            f"{API}/admin/defi/withdrawals/{out.json()['id']}/resolve",
            headers=admin["headers"],
            json={"outcome": "redeemed", "assets": str(move.assets)},
        )
        assert resolved.status_code == 200 and resolved.json() == {"outcome": "settled"}
        done = await settled(client, ada["headers"], out.json()["id"])
        assert done["status"] == "completed" and done["amount"] == "100.00"
        assert done["fee"] == "0.50"  # 0.5 % of 100.00; no gas charged
        assert await balance(engine, ada["id"]) == cash + Decimal("99.50")
        assert await account_balance(engine, ada["id"], "defi", "USDC") == 0
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


async def test_a_strategy_whose_vault_is_not_configured_is_unavailable(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    only_core = {"core": vaults()["core"]}  # e.g. a chain without a growth vault address
    async with defi_client(database_url, mailbox[1], services(only_core)) as (client, _):
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "500.00")
        listed = (await client.get(f"{API}/defi/strategies", headers=ada["headers"])).json()
        growth = next(s for s in listed if s["id"] == "usdc-growth")
        assert growth["available"] is False and growth["share_price"] is None
        response = await client.post(
            POSITIONS,
            headers=ada["headers"],
            json={"strategy_id": "usdc-growth", "amount": "200.00", "acknowledge_risk": True},
        )
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "strategy_unavailable"
        assert await balance(engine, ada["id"]) == Decimal("500.00")
