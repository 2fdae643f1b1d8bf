"""Issue 5's whole journey through the HTTP API, the DeFi part on the real ERC-4626 vault on
anvil: buy BTC with USD, sell part of it, invest in a vault strategy, earn yield, withdraw —
each step seen in the balance, the portfolio and the history, and the ledger clean after."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.chain.deploy import Deployment
from diboas.db.engine import SessionFactory
from diboas.defi.protocols import OMNIBUS
from diboas.defi.service import valuation
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.exchange_routing import VENUES_SERVICE
from tests.api.conftest import Mailbox
from tests.banking.helpers import customer, fund
from tests.chain.fixtures import anvil, chain, chain_tools, deployer, deployment  # noqa: F401
from tests.defi.helpers import API, POSITIONS, defi_client, services, settled
from tests.investing.helpers import venues
from tests.orchestration.conftest import assert_ledger_clean
from tests.providers.defi_harness import onchain_vault


async def _balances(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[Any, Any]:
    body = (await client.get(f"{API}/balances", headers=headers)).json()
    return {(a["domain"], a["asset"]): Decimal(a["available"]) for a in body["assets"]}


async def test_buy_sell_invest_on_chain_earn_and_withdraw(
    database_url: URL,
    mailbox: tuple[Mailbox, int],
    engine: AsyncEngine,
    sessions: SessionFactory,
    chain: Web3Chain,  # noqa: F811 - the fixture of that name
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> None:
    harness = await onchain_vault(chain, deployer, deployment)
    app_services = services({"core": harness.vault})
    app_services[OMNIBUS] = await harness.new_owner(Decimal("1000"))
    app_services[VENUES_SERVICE] = venues(app_services["price_feed"])
    async with defi_client(database_url, mailbox[1], app_services) as (client, app):
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "2000.00")
        headers = ada["headers"]

        # Buy 500 USD of BTC at 50,000 (0.01 BTC), then sell 0.004 of it.
        bought = await client.post(
            f"{API}/investing/orders",
            headers=headers,
            json={"side": "buy", "asset": "BTC", "amount_usd": "500.00"},
        )
        assert bought.status_code == 201, bought.text
        assert bought.json()["quantity"] == "0.01000000"
        sold = await client.post(
            f"{API}/investing/orders",
            headers=headers,
            json={"side": "sell", "asset": "BTC", "quantity": "0.00400000"},
        )
        assert sold.status_code == 201, sold.text
        portfolio = (await client.get(f"{API}/investing/portfolio", headers=headers)).json()
        [btc] = portfolio["holdings"]
        assert btc["asset"] == "BTC" and btc["quantity"] == "0.00600000"
        # FIFO: what is left is 0.006 of the one lot, which cost 500 plus its fee.
        lot_cost = Decimal("500.00") + Decimal(bought.json()["fee"])
        assert Decimal(btc["cost_basis"]) == (lot_cost * Decimal("0.6")).quantize(Decimal("0.01"))
        usd_after_trades = (
            Decimal("2000.00")
            - Decimal("500.00")
            - Decimal(bought.json()["fee"])
            + Decimal("200.00")
            - Decimal(sold.json()["fee"])
        )
        held = await _balances(client, headers)
        assert held[("investing", "BTC")] == Decimal("0.00600000")
        assert held[("banking", "USD")] == usd_after_trades

        # Invest 400 USD into the vault strategy on the local chain.
        invested = await client.post(
            POSITIONS, headers=headers, json={"strategy_id": "usdc-core", "amount": "400.00"}
        )
        assert invested.status_code == 201, invested.text
        done = await settled(client, headers, invested.json()["id"])
        assert done["status"] == "completed", done
        held = await _balances(client, headers)
        assert held[("defi", "USDC")] == Decimal("400.000000")
        assert held[("banking", "USD")] == usd_after_trades - 400 - Decimal(done["fee"])

        # Yield: 20 USDC donated to the vault raises the position's value; accrual books it.
        await harness.donate(Decimal("20"))
        assert await valuation.accrue(sessions, app.state.services, app.state.settings) >= 1
        [position] = (await client.get(POSITIONS, headers=headers)).json()["items"]
        earned = Decimal(position["value"])
        assert Decimal("419.99") < earned <= Decimal("420")
        assert (await _balances(client, headers))[("defi", "USDC")] == earned

        out = await client.post(f"{POSITIONS}/{position['id']}/withdraw", headers=headers)
        assert out.status_code == 201, out.text
        withdrawn = await settled(client, headers, out.json()["id"])
        assert withdrawn["status"] == "completed", withdrawn
        held = await _balances(client, headers)
        assert held.get(("defi", "USDC"), Decimal(0)) == 0
        assert held[("investing", "BTC")] == Decimal("0.00600000")

        history = (await client.get(f"{API}/transactions", headers=headers)).json()["items"]
        assert [t["type"] for t in history][:4] == ["defi_withdraw", "defi_deposit", "sell", "buy"]
        assert all(t["status"] == "completed" for t in history[:4])
        await assert_ledger_clean(engine)
