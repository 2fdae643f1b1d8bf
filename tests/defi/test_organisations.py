"""Positions owned by an organisation: the table holds exactly one owner per position (even
for raw SQL), and an organisation's treasury invests, earns and withdraws on the real
ERC-4626 vault on anvil, in one vault deposit with a user's money."""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
import pytest
from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.chain.deploy import Deployment
from diboas.db.engine import SessionFactory
from diboas.defi.protocols import OMNIBUS
from diboas.defi.service import batches, valuation
from diboas.providers.chain_web3 import Web3Chain
from tests.api.conftest import Mailbox
from tests.banking.helpers import customer, fund
from tests.business.helpers import funded_organisation, org_path
from tests.business.test_treasury_defi import keyed, org_balance
from tests.chain.fixtures import anvil, chain, chain_tools, deployer, deployment  # noqa: F401
from tests.defi.helpers import POSITIONS, defi_client, services, settled
from tests.orchestration.conftest import assert_ledger_clean
from tests.providers.defi_harness import onchain_vault


@pytest.mark.parametrize("owners", ["both", "neither"])
async def test_a_position_has_exactly_one_owner_even_in_raw_sql(
    raw: asyncpg.Connection, owners: str
) -> None:
    # The CHECK is evaluated before the foreign keys (deferred to the end of the statement),
    # so owners that do not exist are enough to show it.
    values = (uuid.uuid4(), uuid.uuid4()) if owners == "both" else (None, None)
    with pytest.raises(asyncpg.CheckViolationError, match="defi_positions_one_owner"):
        await raw.execute(
            """INSERT INTO defi_positions (id, user_id, organisation_id, strategy_id, status,
                                           principal, deposit_transaction_id, locked_until)
               VALUES ($1, $2, $3, 'usdc-core', 'pending', 10, $4, now())""",
            uuid.uuid4(),
            *values,
            uuid.uuid4(),
        )


async def test_a_treasury_invests_earns_and_withdraws_on_the_erc4626_vault(
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
        admin, organisation = await funded_organisation(client, engine, sessions, "1000.00")
        oid, headers = organisation["id"], admin["headers"]
        invested = await client.post(
            org_path(oid, "/treasury/defi/positions"),
            headers=keyed(headers, "onchain-1"),
            json={"strategy_id": "usdc-core", "amount": "300.00"},
        )
        assert invested.status_code == 201, invested.text
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "500.00")
        personal = await client.post(
            POSITIONS, headers=ada["headers"], json={"strategy_id": "usdc-core", "amount": "100.00"}
        )
        assert personal.status_code == 201, personal.text
        assert await batches.run_batch(
            sessions, app.state.services, app.state.settings, "usdc-core"
        )
        done = await settled(client, headers, invested.json()["id"])
        assert done["status"] == "completed", done
        paid = Decimal("1000.00") - 300 - Decimal(done["fee"])
        assert await org_balance(engine, oid, "banking", "USD") == paid

        listed = (
            await client.get(org_path(oid, "/treasury/defi/positions"), headers=headers)
        ).json()
        [position] = listed["items"]
        [theirs] = (await client.get(POSITIONS, headers=ada["headers"])).json()["items"]
        # One vault deposit: the omnibus wallet's shares are the two positions' (the platform
        # keeps the rounding residue, under one unit each).
        held = await harness.vault.shares_of(omnibus.address)
        owned = Decimal(position["shares"]) + Decimal(theirs["shares"])
        assert Decimal(0) <= held - owned < Decimal("0.000002")

        await harness.donate(Decimal("40"))
        assert await valuation.accrue(sessions, app.state.services, app.state.settings) >= 2
        treasury = (await client.get(org_path(oid, "/treasury"), headers=headers)).json()
        earned = Decimal(treasury["defi"]["accrued_yield_usd"])
        assert Decimal("29.9") < earned <= Decimal("30")  # 300 of the 400 in the vault
        value = await org_balance(engine, oid, "defi", "USDC")
        assert abs(value - Decimal(300) - earned) <= Decimal("0.005")  # earned: to the cent

        out = await client.post(
            org_path(oid, f"/treasury/defi/positions/{position['id']}/withdraw"),
            headers=keyed(headers, "onchain-out-1"),
        )
        assert out.status_code == 201, out.text
        withdrawn = await settled(client, headers, out.json()["id"])
        assert withdrawn["status"] == "completed", withdrawn
        back = Decimal(withdrawn["amount"]) - Decimal(withdrawn["fee"])
        assert await org_balance(engine, oid, "banking", "USD") == paid + back
        assert await org_balance(engine, oid, "defi", "USDC") == 0
        await assert_ledger_clean(engine)
