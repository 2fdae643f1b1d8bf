"""Batching and compensation through the HTTP API: several users' deposits go to the vault
as one transaction (shares split pro rata, gas split across the batch), and a vault that
reverts releases every hold, with the saga showing the compensation."""

from __future__ import annotations

from decimal import Decimal

from eth_account import Account
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from diboas.defi.service import batches
from tests.api.conftest import Mailbox
from tests.api.test_admin import signed_in_as
from tests.banking.helpers import balance, customer, fund
from tests.defi.helpers import (
    POSITIONS,
    RECONCILE,
    Clock,
    CountingVault,
    PausedVault,
    account_balance,
    defi_client,
    services,
    settled,
    vaults,
)
from tests.orchestration.conftest import assert_ledger_clean


async def test_many_users_deposits_make_one_vault_deposit(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    clock = Clock()
    core = CountingVault(apy=Decimal(0), clock=clock)
    # Someone else is in the vault already and yield arrived: shares are not worth 1.
    outsider = Account.create()
    await core.deposit(outsider, Decimal("1000"))
    core.donate(Decimal("7.123457"))
    core.deposits.clear()
    # A long batch window: the deposits wait for the batch the test runs.
    async with defi_client(
        database_url, mailbox[1], services(vaults(core, clock)), defi_batch_window_seconds=3600
    ) as (client, app):
        users, movements = [], []
        for amount in ("100.00", "250.00", "333.33"):
            user = await customer(client, engine)
            await fund(sessions, user["id"], "1000.00")
            response = await client.post(
                POSITIONS,
                headers=user["headers"],
                json={"strategy_id": "usdc-core", "amount": amount},
            )
            assert response.status_code == 201, response.text
            # Each holds the gas of a whole deposit transaction: 0.61.
            assert response.json()["fee_breakdown"]["network"] == "0.61"
            users.append(user)
            movements.append(response.json())

        # The database is shared with other tests (their positions, other vaults): compare
        # the reconciliation's difference before and after, not its absolute figures.
        admin = await signed_in_as(client, engine, "admin")
        before = await client.get(RECONCILE, headers=admin["headers"])
        assert before.status_code == 200, before.text
        forbidden = await client.get(RECONCILE, headers=users[0]["headers"])
        assert forbidden.status_code == 403
        batch_id = await batches.run_batch(
            sessions, app.state.services, app.state.settings, "usdc-core"
        )
        assert batch_id is not None
        assert core.deposits == [Decimal("683.330000")]  # one vault transaction
        # Nothing is left for the jobs the deposits staged.
        assert (
            await batches.run_batch(sessions, app.state.services, app.state.settings, "usdc-core")
            is None
        )

        async with engine.connect() as conn:
            batch = (
                await conn.execute(
                    text("SELECT * FROM defi_batches WHERE id = :id"), {"id": batch_id}
                )
            ).one()
            positions = (
                await conn.execute(
                    text("SELECT id, shares FROM defi_positions WHERE batch_id = :id"),
                    {"id": batch_id},
                )
            ).all()
            platform = (
                await conn.execute(
                    text("SELECT platform_shares FROM defi_strategies WHERE id = 'usdc-core'")
                )
            ).scalar_one()
        assert batch.status == "settled" and batch.deposits == 3
        minted = Decimal(batch.shares)
        # The omnibus wallet holds exactly what the batch minted.
        assert minted == await core.shares_of(app.state.services["defi.omnibus"].address)
        # Pro rata, rounded down: the residue (under one unit per deposit) is the platform's.
        allotted = sum((Decimal(p.shares) for p in positions), Decimal(0))
        assert allotted + Decimal(platform) == minted
        assert Decimal(0) <= Decimal(platform) < Decimal("0.000003")
        # The batch's gas (0.605 USD, 0.61 rounded up) split three ways: 0.21 each, the rest
        # of each 0.61 held goes back.
        assert Decimal(batch.gas_usd) == Decimal("0.61")
        for user, movement, amount in zip(
            users, movements, ("100.00", "250.00", "333.33"), strict=True
        ):
            done = await settled(client, user["headers"], movement["id"])
            assert done["status"] == "completed", done
            platform_fee = (Decimal(amount) * Decimal("0.005")).quantize(
                Decimal("0.01"), rounding="ROUND_UP"
            )
            assert done["fee_breakdown"]["network"] == "0.21"
            assert Decimal(done["fee"]) == platform_fee + Decimal("0.21")
            assert await balance(engine, user["id"]) == Decimal("1000.00") - Decimal(
                amount
            ) - Decimal(done["fee"])
            assert await balance(engine, user["id"], "held") == 0
            assert await account_balance(engine, user["id"], "defi", "USDC") == Decimal(amount)
        after = await client.get(RECONCILE, headers=admin["headers"])
        core_before = next(v for v in before.json()["vaults"] if v["vault"] == "core")
        core_after = next(v for v in after.json()["vaults"] if v["vault"] == "core")
        # The omnibus wallet gained exactly what the positions and the platform were given.
        assert (
            Decimal(core_after["omnibus_shares"]) - Decimal(core_before["omnibus_shares"]) == minted
        )
        assert core_after["difference"] == core_before["difference"]
        assert batch_id not in after.json()["unfinished_batches"]
        await assert_ledger_clean(engine)


async def test_a_reverting_vault_releases_the_hold(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    paused = PausedVault(apy=Decimal(0), clock=Clock())
    async with defi_client(database_url, mailbox[1], services(vaults(paused))) as (client, _):
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "300.00")
        response = await client.post(
            POSITIONS, headers=ada["headers"], json={"strategy_id": "usdc-core", "amount": "200.00"}
        )
        assert response.status_code == 201, response.text
        assert await balance(engine, ada["id"], "held") == Decimal("201.61")

        done = await settled(client, ada["headers"], response.json()["id"])
        assert done["status"] == "failed" and done["failure_code"] == "chain_tx_reverted"
        assert [s["state"] for s in done["steps"]] == [
            "accepted",
            "provider_requested",
            "compensated",
        ]
        assert done["steps"][-1]["detail"]["hold_released"]
        assert await balance(engine, ada["id"]) == Decimal("300.00")
        assert await balance(engine, ada["id"], "held") == 0
        assert await account_balance(engine, ada["id"], "defi", "USDC") == 0
        [position] = (await client.get(POSITIONS, headers=ada["headers"])).json()["items"]
        assert position["status"] == "failed"
        await assert_ledger_clean(engine)
