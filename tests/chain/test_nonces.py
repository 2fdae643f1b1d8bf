"""Sends from one key by several processes take turns on a PostgreSQL advisory lock."""

from __future__ import annotations

import asyncio

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.chain.anvil import AnvilNode
from diboas.chain.nonces import advisory_signer_lock, lock_key
from diboas.providers.chain_web3 import Web3Chain

ETHER = 10**18


async def test_two_processes_sending_from_one_key_never_share_a_nonce(
    anvil: AnvilNode, chain: Web3Chain, deployer: LocalAccount, engine: AsyncEngine
) -> None:
    sender: LocalAccount = Account.create()
    await chain.send(deployer, to=sender.address, value=ETHER)
    # Two adapters with their own caches and in-process locks stand for two worker processes.
    processes = [Web3Chain(anvil.url, signer_lock=advisory_signer_lock(engine)) for _ in range(2)]
    recipients = [Account.create().address for _ in range(16)]
    try:
        receipts = await asyncio.gather(
            *(
                processes[i % 2].send(sender, to=recipient, value=1_000 + i)
                for i, recipient in enumerate(recipients)
            )
        )
    finally:
        for process in processes:
            await process.close()
    assert all(r.status == 1 for r in receipts)
    assert await chain.w3.eth.get_transaction_count(sender.address) == 16
    for i, recipient in enumerate(recipients):
        assert await chain.native_balance(recipient) == 1_000 + i


async def test_a_send_waits_while_another_process_holds_the_keys_lock(
    anvil: AnvilNode, chain: Web3Chain, deployer: LocalAccount, engine: AsyncEngine
) -> None:
    sender: LocalAccount = Account.create()
    await chain.send(deployer, to=sender.address, value=ETHER)
    other = Web3Chain(anvil.url, signer_lock=advisory_signer_lock(engine))
    try:
        async with engine.begin() as holder:
            await holder.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(sender.address)}
            )
            send = asyncio.create_task(other.send(sender, to=deployer.address, value=1))
            async with engine.connect() as probe:
                while not (
                    await probe.execute(
                        text(
                            "SELECT count(*) FROM pg_locks "
                            "WHERE locktype = 'advisory' AND NOT granted"
                        )
                    )
                ).scalar_one():
                    assert not send.done(), send
                    await asyncio.sleep(0.01)
            assert not send.done()  # queued behind the holder, nothing submitted
            assert await chain.w3.eth.get_transaction_count(sender.address, "pending") == 0
        receipt = await send  # the holder's transaction ended: the lock passes on
        assert receipt.status == 1
    finally:
        await other.close()
