"""The same DeFi flow through the HTTP API against the real ERC-4626 vault on anvil: a fresh
vault per test, the omnibus wallet a funded key holding the USDC the platform's treasury
would have bought (minted here). Gas is whatever anvil charges, so the figures are checked
against the chain rather than worked out by hand. Never skipped: a chain that cannot start
fails the test (tests.chain.fixtures)."""

from __future__ import annotations

from decimal import Decimal

from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.chain.deploy import Deployment
from diboas.db.engine import SessionFactory
from diboas.defi.protocols import OMNIBUS, VAULTS
from diboas.defi.service import batches, valuation
from diboas.providers.chain_web3 import Web3Chain
from tests.api.conftest import Mailbox
from tests.banking.helpers import balance, customer, fund
from tests.chain.fixtures import anvil, chain, chain_tools, deployer, deployment  # noqa: F401
from tests.defi.helpers import API, POSITIONS, account_balance, defi_client, services, settled
from tests.orchestration.conftest import assert_ledger_clean
from tests.providers.defi_harness import onchain_vault


async def test_invest_earn_and_withdraw_on_the_erc4626_vault(
    database_url: URL,
    mailbox: tuple[Mailbox, int],
    engine: AsyncEngine,
    sessions: SessionFactory,
    chain: Web3Chain,  # noqa: F811 - the fixture of that name
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> None:
    harness = await onchain_vault(chain, deployer, deployment)
    omnibus = await harness.new_owner(Decimal("1000"))
    app_services = services({"core": harness.vault})
    app_services[OMNIBUS] = omnibus
    async with defi_client(database_url, mailbox[1], app_services) as (client, app):
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "1000.00")
        headers = ada["headers"]
        response = await client.post(
            POSITIONS, headers=headers, json={"strategy_id": "usdc-core", "amount": "400.00"}
        )
        assert response.status_code == 201, response.text
        estimate = Decimal(response.json()["fee_breakdown"]["network"])
        assert estimate > 0  # approval + deposit, estimated on chain before anything was sent
        done = await settled(client, headers, response.json()["id"])
        assert done["status"] == "completed", done
        charged_gas = Decimal(done["fee_breakdown"]["network"])
        assert Decimal(0) < charged_gas <= estimate
        [position] = (await client.get(POSITIONS, headers=headers)).json()["items"]
        # The vault minted the shares to the omnibus wallet; the position owns them all.
        assert Decimal(position["shares"]) == await harness.vault.shares_of(omnibus.address)
        assert position["value"] == "400.000000"
        assert await harness.usdc_of(omnibus.address) == Decimal("600")
        assert await balance(engine, ada["id"]) == Decimal("1000.00") - Decimal(done["fee"]) - 400
        await assert_ledger_clean(engine)

        # 40 USDC of yield sent to the vault: the position is worth about 440 now.
        await harness.donate(Decimal("40"))
        [position] = (await client.get(POSITIONS, headers=headers)).json()["items"]
        assert Decimal("439.99") < Decimal(position["value"]) <= Decimal("440")
        assert await valuation.accrue(sessions, app.state.services, app.state.settings) >= 1
        booked = await account_balance(engine, ada["id"], "defi", "USDC")
        assert booked == Decimal(position["value"])

        out = await client.post(f"{POSITIONS}/{position['id']}/withdraw", headers=headers)
        assert out.status_code == 201, out.text
        done = await settled(client, headers, out.json()["id"])
        assert done["status"] == "completed", done
        received = Decimal(done["amount"])
        assert received == booked.quantize(Decimal("0.01"), rounding="ROUND_DOWN")
        # The vault paid the omnibus wallet; the user got it in USD, less fee and gas.
        assert await harness.vault.shares_of(omnibus.address) == 0
        assert await harness.usdc_of(omnibus.address) == Decimal("600") + booked
        assert await account_balance(engine, ada["id"], "defi", "USDC") == 0
        history = (await client.get(f"{API}/transactions", headers=headers)).json()["items"]
        assert [t["type"] for t in history if t["domain"] == "defi"] == [
            "defi_withdraw",
            "defi_deposit",
        ]
        assert app.state.services[VAULTS]["core"] is harness.vault
        await assert_ledger_clean(engine)


async def test_two_users_deposits_are_one_vault_deposit_on_chain(
    database_url: URL,
    mailbox: tuple[Mailbox, int],
    engine: AsyncEngine,
    sessions: SessionFactory,
    chain: Web3Chain,  # noqa: F811 - the fixture of that name
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> None:
    harness = await onchain_vault(chain, deployer, deployment)
    omnibus = await harness.new_owner(Decimal("1000"))
    app_services = services({"core": harness.vault})
    app_services[OMNIBUS] = omnibus
    async with defi_client(
        database_url, mailbox[1], app_services, defi_batch_window_seconds=3600
    ) as (client, app):
        users, accepted = [], []
        for amount in ("150.00", "250.00"):
            user = await customer(client, engine)
            await fund(sessions, user["id"], "500.00")
            response = await client.post(
                POSITIONS,
                headers=user["headers"],
                json={"strategy_id": "usdc-core", "amount": amount},
            )
            assert response.status_code == 201, response.text
            users.append(user)
            accepted.append(response.json())
        assert await batches.run_batch(
            sessions, app.state.services, app.state.settings, "usdc-core"
        )
        steps = []
        for user, movement in zip(users, accepted, strict=True):
            done = await settled(client, user["headers"], movement["id"])
            assert done["status"] == "completed", done
            steps.append(done["steps"][-1]["detail"])
        # One approval and one deposit transaction, shared by both users.
        assert steps[0]["tx_hashes"] == steps[1]["tx_hashes"]
        assert len(steps[0]["tx_hashes"]) == 2
        shares = sum((Decimal(s["shares"]) for s in steps), Decimal(0))
        assert shares == await harness.vault.shares_of(omnibus.address)  # first deposit: 1:1
        assert await harness.usdc_of(omnibus.address) == Decimal("600")
        await assert_ledger_clean(engine)
