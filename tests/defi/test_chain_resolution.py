"""Vault transactions whose answer was lost, resolved from the chain without an operator: the
platform talks to anvil through a proxy that drops the connection after the node took a
transaction (or before it saw it), and the worker looks the transaction up by hash and nonce —
mined: settled from its receipt; never received: the same signed transaction sent again;
its nonce taken by another: compensated; the approval lost: the deposit sent after it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.chain.anvil import AnvilNode
from diboas.chain.deploy import Deployment
from diboas.db.engine import SessionFactory
from diboas.defi.protocols import OMNIBUS
from diboas.defi.service import batches, chain_resolution
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.defi_onchain import Erc4626Vault
from tests.api.conftest import Mailbox
from tests.banking.helpers import balance, customer, fund
from tests.chain.fixtures import (  # noqa: F401
    all_abis,
    anvil,
    chain,
    chain_tools,
    deployer,
    deployment,
)
from tests.defi.helpers import API, POSITIONS, defi_client, saga_state, services, settled
from tests.defi.rpc_fault_proxy import RpcFault, RpcFaultProxy
from tests.orchestration.conftest import assert_ledger_clean, states
from tests.providers.defi_harness import VaultHarness, onchain_vault

SEND = "eth_sendRawTransaction"


@asynccontextmanager
async def proxied_app(
    database_url: URL,
    smtp_port: int,
    anvil: AnvilNode,  # noqa: F811 - the fixture of that name
    harness: VaultHarness,
    omnibus: LocalAccount,
    **overrides: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI, RpcFaultProxy]]:
    """The app on the test's vault, reached through a fault proxy in front of anvil."""
    proxy = RpcFaultProxy(anvil.url)
    await proxy.start()
    rpc = Web3Chain(proxy.url, timeout=5, receipt_timeout=20, decoder=all_abis())
    assert isinstance(harness.vault, Erc4626Vault)
    vault = Erc4626Vault(rpc, harness.vault.address)
    app_services = services({"core": vault})
    app_services[OMNIBUS] = omnibus
    try:
        async with defi_client(database_url, smtp_port, app_services, **overrides) as (
            client,
            app,
        ):
            yield client, app, proxy
    finally:
        await rpc.close()
        await proxy.stop()


async def _invest(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory, amount: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    user = await customer(client, engine)
    await fund(sessions, user["id"], "1000.00")
    response = await client.post(
        POSITIONS, headers=user["headers"], json={"strategy_id": "usdc-core", "amount": amount}
    )
    assert response.status_code == 201, response.text
    return user, response.json()


async def _batch_of(engine: AsyncEngine, transaction_id: str) -> uuid.UUID:
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                text("SELECT batch_id FROM defi_positions WHERE deposit_transaction_id = :t"),
                {"t": uuid.UUID(transaction_id)},
            )
        ).scalar_one()
    assert isinstance(found, uuid.UUID)
    return found


async def _resolved_audits(engine: AsyncEngine, subject_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("""SELECT details FROM audit_log
                     WHERE action IN ('defi.batch.resolved', 'defi.withdrawal.resolved')
                       AND subject_id = :s"""),
            {"s": subject_id},
        )
        return [dict(row.details) for row in rows]


async def test_a_deposit_whose_answer_was_lost_is_settled_from_its_receipt_by_the_worker(
    database_url: URL,
    mailbox: tuple[Mailbox, int],
    engine: AsyncEngine,
    sessions: SessionFactory,
    anvil: AnvilNode,  # noqa: F811
    chain: Web3Chain,  # noqa: F811
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> None:
    harness = await onchain_vault(chain, deployer, deployment)
    omnibus = await harness.new_owner(Decimal("1000"))
    async with proxied_app(
        database_url, mailbox[1], anvil, harness, omnibus, saga_reconcile_delay_seconds=0.2
    ) as (client, _app, proxy):
        # The approval passes; the deposit reaches the node and is mined, and the connection
        # drops before the platform hears of it.
        proxy.plan(SEND, None, RpcFault.LOST_AFTER_SEND)
        user, movement = await _invest(client, engine, sessions, "400.00")
        done = await settled(client, user["headers"], movement["id"])
        assert proxy.injected == [(SEND, RpcFault.LOST_AFTER_SEND)]
        assert done["status"] == "completed", done
        assert states(done) == ["accepted", "provider_requested", "ambiguous", "settled"]
        assert (
            Decimal(0)
            < Decimal(done["fee_breakdown"]["network"])
            <= Decimal(movement["fee_breakdown"]["network"])
        )
        [position] = (await client.get(POSITIONS, headers=user["headers"])).json()["items"]
        assert Decimal(position["shares"]) == await harness.vault.shares_of(omnibus.address)
        assert await harness.usdc_of(omnibus.address) == Decimal("600")  # deposited once
        assert await balance(engine, user["id"]) == Decimal("600.00") - Decimal(done["fee"])
        batch_id = await _batch_of(engine, movement["id"])
        [audited] = await _resolved_audits(engine, str(batch_id))
        assert audited["fate"] == "mined" and audited["source"] == "chain"
        await assert_ledger_clean(engine)


async def test_a_deposit_the_node_never_received_is_sent_again_once(
    database_url: URL,
    mailbox: tuple[Mailbox, int],
    engine: AsyncEngine,
    sessions: SessionFactory,
    anvil: AnvilNode,  # noqa: F811
    chain: Web3Chain,  # noqa: F811
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> None:
    harness = await onchain_vault(chain, deployer, deployment)
    omnibus = await harness.new_owner(Decimal("1000"))
    async with proxied_app(
        database_url, mailbox[1], anvil, harness, omnibus, saga_reconcile_delay_seconds=3600
    ) as (client, app, proxy):
        proxy.plan(SEND, None, RpcFault.DROPPED_BEFORE_NODE)
        user, movement = await _invest(client, engine, sessions, "250.00")
        parked = await saga_state(client, user["headers"], movement["id"], "ambiguous")
        assert parked["status"] == "processing"
        assert await harness.usdc_of(omnibus.address) == Decimal("1000")  # nothing happened
        batch_id = await _batch_of(engine, movement["id"])
        payload = {"batch_id": str(batch_id)}
        outcome = await chain_resolution.resolve_batch(
            sessions, app.state.services, app.state.settings, payload
        )
        assert outcome == "settled"
        # Delivered again (at least once): nothing left to do, and nothing sent twice.
        assert (
            await chain_resolution.resolve_batch(
                sessions, app.state.services, app.state.settings, payload
            )
            == "nothing"
        )
        done = await settled(client, user["headers"], movement["id"])
        assert done["status"] == "completed", done
        assert await harness.usdc_of(omnibus.address) == Decimal("750")
        [position] = (await client.get(POSITIONS, headers=user["headers"])).json()["items"]
        assert Decimal(position["shares"]) == await harness.vault.shares_of(omnibus.address)
        await assert_ledger_clean(engine)


async def test_a_lost_deposit_whose_nonce_went_to_another_transaction_is_compensated(
    database_url: URL,
    mailbox: tuple[Mailbox, int],
    engine: AsyncEngine,
    sessions: SessionFactory,
    anvil: AnvilNode,  # noqa: F811
    chain: Web3Chain,  # noqa: F811
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> None:
    harness = await onchain_vault(chain, deployer, deployment)
    omnibus = await harness.new_owner(Decimal("1000"))
    async with proxied_app(
        database_url, mailbox[1], anvil, harness, omnibus, saga_reconcile_delay_seconds=3600
    ) as (client, app, proxy):
        proxy.plan(SEND, None, RpcFault.DROPPED_BEFORE_NODE)
        user, movement = await _invest(client, engine, sessions, "100.00")
        await saga_state(client, user["headers"], movement["id"], "ambiguous")
        # Another transaction of the wallet takes the lost deposit's nonce: it can never be
        # mined now.
        await chain.send(omnibus, to=omnibus.address, value=0)
        outcome = await chain_resolution.resolve_batch(
            sessions,
            app.state.services,
            app.state.settings,
            {"batch_id": str(await _batch_of(engine, movement["id"]))},
        )
        assert outcome == "compensated"
        done = await settled(client, user["headers"], movement["id"])
        assert done["status"] == "failed" and done["failure_code"] == "chain_tx_dropped", done
        assert await balance(engine, user["id"]) == Decimal("1000.00")  # the hold released
        assert await balance(engine, user["id"], "held") == 0
        assert await harness.vault.shares_of(omnibus.address) == 0
        await assert_ledger_clean(engine)


async def test_a_lost_approval_is_followed_by_the_deposit(
    database_url: URL,
    mailbox: tuple[Mailbox, int],
    engine: AsyncEngine,
    sessions: SessionFactory,
    anvil: AnvilNode,  # noqa: F811
    chain: Web3Chain,  # noqa: F811
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> None:
    harness = await onchain_vault(chain, deployer, deployment)
    omnibus = await harness.new_owner(Decimal("1000"))
    async with proxied_app(
        database_url, mailbox[1], anvil, harness, omnibus, saga_reconcile_delay_seconds=0.2
    ) as (client, _app, proxy):
        proxy.plan(SEND, RpcFault.LOST_AFTER_SEND)  # the approval: mined, answer lost
        user, movement = await _invest(client, engine, sessions, "300.00")
        done = await settled(client, user["headers"], movement["id"])
        assert done["status"] == "completed", done
        assert states(done) == [
            "accepted",
            "provider_requested",
            "ambiguous",
            "provider_requested",
            "settled",
        ]
        assert await harness.usdc_of(omnibus.address) == Decimal("700")
        [position] = (await client.get(POSITIONS, headers=user["headers"])).json()["items"]
        assert Decimal(position["shares"]) == await harness.vault.shares_of(omnibus.address)
        await assert_ledger_clean(engine)


async def test_a_redemption_whose_answer_was_lost_is_settled_from_its_receipt(
    database_url: URL,
    mailbox: tuple[Mailbox, int],
    engine: AsyncEngine,
    sessions: SessionFactory,
    anvil: AnvilNode,  # noqa: F811
    chain: Web3Chain,  # noqa: F811
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> None:
    harness = await onchain_vault(chain, deployer, deployment)
    omnibus = await harness.new_owner(Decimal("1000"))
    async with proxied_app(
        database_url, mailbox[1], anvil, harness, omnibus, saga_reconcile_delay_seconds=0.2
    ) as (client, _app, proxy):
        user, movement = await _invest(client, engine, sessions, "200.00")
        invested = await settled(client, user["headers"], movement["id"])
        assert invested["status"] == "completed", invested
        [position] = (await client.get(POSITIONS, headers=user["headers"])).json()["items"]
        proxy.plan(SEND, RpcFault.LOST_AFTER_SEND)
        out = await client.post(f"{POSITIONS}/{position['id']}/withdraw", headers=user["headers"])
        assert out.status_code == 201, out.text
        done = await settled(client, user["headers"], out.json()["id"])
        assert proxy.injected == [(SEND, RpcFault.LOST_AFTER_SEND)]
        assert done["status"] == "completed", done
        assert states(done) == ["accepted", "provider_requested", "ambiguous", "settled"]
        assert await harness.vault.shares_of(omnibus.address) == 0
        assert await harness.usdc_of(omnibus.address) == Decimal("1000")
        expected = (
            Decimal("1000.00")
            - Decimal("200.00")
            - Decimal(invested["fee"])
            + Decimal(done["amount"])
            - Decimal(done["fee"])
        )
        assert await balance(engine, user["id"]) == expected
        [audited] = await _resolved_audits(engine, out.json()["id"])
        assert audited["fate"] == "mined"
        history = (await client.get(f"{API}/transactions", headers=user["headers"])).json()
        assert [t["type"] for t in history["items"]][:2] == ["defi_withdraw", "defi_deposit"]
        await assert_ledger_clean(engine)


async def test_a_deposit_still_in_the_pool_is_asked_about_again_then_settled(
    database_url: URL,
    mailbox: tuple[Mailbox, int],
    engine: AsyncEngine,
    sessions: SessionFactory,
    anvil: AnvilNode,  # noqa: F811
    chain: Web3Chain,  # noqa: F811
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> None:
    harness = await onchain_vault(chain, deployer, deployment)
    omnibus = await harness.new_owner(Decimal("1000"))
    assert isinstance(harness.vault, Erc4626Vault)
    # Approved beforehand, so the batch sends its deposit alone.
    await (await harness.vault.token()).send(omnibus, "approve", harness.vault.address, 10**12)
    async with proxied_app(
        database_url,
        mailbox[1],
        anvil,
        harness,
        omnibus,
        defi_batch_window_seconds=3600,
        saga_reconcile_delay_seconds=3600,
    ) as (client, app, proxy):
        user, movement = await _invest(client, engine, sessions, "150.00")
        proxy.plan(SEND, RpcFault.LOST_AFTER_SEND)
        await chain.rpc("evm_setAutomine", [False])
        try:
            await batches.run_batch(sessions, app.state.services, app.state.settings, "usdc-core")
            payload = {"batch_id": str(await _batch_of(engine, movement["id"]))}
            # In the node's pool, not mined: nothing is decided, and the job is staged again.
            outcome = await chain_resolution.resolve_batch(
                sessions, app.state.services, app.state.settings, payload
            )
            assert outcome == "pending"
            parked = await saga_state(client, user["headers"], movement["id"], "ambiguous")
            assert parked["status"] == "processing"
            await chain.rpc("evm_mine")
        finally:
            await chain.rpc("evm_setAutomine", [True])
        outcome = await chain_resolution.resolve_batch(
            sessions, app.state.services, app.state.settings, payload
        )
        assert outcome == "settled"
        done = await settled(client, user["headers"], movement["id"])
        assert done["status"] == "completed", done
        assert await harness.usdc_of(omnibus.address) == Decimal("850")
        await assert_ledger_clean(engine)


async def test_a_lost_deposit_that_reverted_when_mined_is_compensated(
    database_url: URL,
    mailbox: tuple[Mailbox, int],
    engine: AsyncEngine,
    sessions: SessionFactory,
    anvil: AnvilNode,  # noqa: F811
    chain: Web3Chain,  # noqa: F811
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> None:
    harness = await onchain_vault(chain, deployer, deployment)
    omnibus = await harness.new_owner(Decimal("1000"))
    assert isinstance(harness.vault, Erc4626Vault)
    token = await harness.vault.token()
    await token.send(omnibus, "approve", harness.vault.address, 10**12)
    # TestUSDC's balanceOf is its storage slot 3 (name, symbol, totalSupply come first).
    balance_slot = "0x" + keccak(abi_encode(["address", "uint256"], [omnibus.address, 3])).hex()
    async with proxied_app(
        database_url,
        mailbox[1],
        anvil,
        harness,
        omnibus,
        defi_batch_window_seconds=3600,
        saga_reconcile_delay_seconds=3600,
    ) as (client, app, proxy):
        user, movement = await _invest(client, engine, sessions, "120.00")
        proxy.plan(SEND, RpcFault.LOST_AFTER_SEND)
        await chain.rpc("evm_setAutomine", [False])
        try:
            await batches.run_batch(sessions, app.state.services, app.state.settings, "usdc-core")
            # While the deposit waits in the pool, the wallet's USDC goes: mined, it reverts.
            await chain.rpc("anvil_setStorageAt", [token.address, balance_slot, "0x" + "00" * 32])
            await chain.rpc("evm_mine")
        finally:
            await chain.rpc("evm_setAutomine", [True])
        outcome = await chain_resolution.resolve_batch(
            sessions,
            app.state.services,
            app.state.settings,
            {"batch_id": str(await _batch_of(engine, movement["id"]))},
        )
        assert outcome == "compensated"
        done = await settled(client, user["headers"], movement["id"])
        assert done["status"] == "failed" and done["failure_code"] == "chain_tx_reverted", done
        assert states(done)[-2:] == ["ambiguous", "compensated"]
        assert await balance(engine, user["id"]) == Decimal("1000.00")
        assert await harness.vault.shares_of(omnibus.address) == 0
        await assert_ledger_clean(engine)
