"""The JSON-RPC adapter against a real anvil: balances, signed transfers, gas, reverts,
concurrent nonces and a node that goes away."""

from __future__ import annotations

import asyncio

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from diboas.chain.anvil import AnvilNode, free_port
from diboas.chain.deploy import Deployment
from diboas.providers.chain import (
    ChainPendingError,
    ChainRevertedError,
    ChainTransactionError,
    ChainUnavailableError,
)
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.resilience import RetryPolicy, call
from tests.chain.helpers import encode, mint_usdc, send_usdc

ONE_ETHER = 10**18


async def test_ether_transfer_moves_value_and_charges_gas(
    chain: Web3Chain, deployer: LocalAccount
) -> None:
    recipient = Account.create().address
    before = await chain.native_balance(deployer.address)
    receipt = await chain.send(deployer, to=recipient, value=ONE_ETHER // 10)
    assert receipt.status == 1
    assert receipt.gas_used == 21_000
    assert await chain.native_balance(recipient) == ONE_ETHER // 10
    assert (
        await chain.native_balance(deployer.address) == before - ONE_ETHER // 10 - receipt.fee_wei
    )


async def test_token_balance_follows_mint_and_transfer(
    chain: Web3Chain, deployer: LocalAccount, deployment: Deployment
) -> None:
    alice, bob = Account.create(), Account.create().address
    await mint_usdc(chain, deployer, deployment.usdc, alice.address, 5_000_000)
    await chain.send(deployer, to=alice.address, value=ONE_ETHER)  # gas money
    await send_usdc(chain, alice, deployment.usdc, bob, 1_250_000)
    assert await chain.token_balance(deployment.usdc, alice.address) == 3_750_000
    assert await chain.token_balance(deployment.usdc, bob) == 1_250_000


async def test_gas_estimate_uses_eip1559_fees(
    chain: Web3Chain, deployer: LocalAccount, deployment: Deployment
) -> None:
    data = encode("TestUSDC", "mint", deployer.address, 1)
    quote = await chain.estimate(deployer.address, to=deployment.usdc, data=data)
    max_fee, tip = await chain.fees()
    assert quote.max_priority_fee_per_gas == tip > 0
    assert quote.max_fee_per_gas == max_fee > tip
    # the margin over the node's estimate is what a real send may use
    receipt = await chain.send(deployer, to=deployment.usdc, data=data)
    assert receipt.gas_used <= quote.gas_limit


async def test_revert_is_refused_before_sending_with_the_decoded_error(
    chain: Web3Chain, deployment: Deployment
) -> None:
    stranger = Account.create()
    data = encode("TestUSDC", "transfer", Account.create().address, 7)
    with pytest.raises(ChainRevertedError) as caught:
        await chain.send(stranger, to=deployment.usdc, data=data)
    assert caught.value.code == "chain_tx_reverted"
    assert caught.value.error_name == "InsufficientBalance"
    assert caught.value.args_decoded[1:] == (0, 7)
    assert not caught.value.retryable
    assert await chain.native_balance(stranger.address) == 0  # nothing was sent, no gas paid


async def test_no_ether_for_gas_is_a_refused_transaction(
    chain: Web3Chain, deployer: LocalAccount
) -> None:
    broke = Account.create()
    with pytest.raises(ChainTransactionError) as caught:
        await chain.send(broke, to=deployer.address, value=1)
    assert caught.value.code == "chain_tx_refused"


async def test_concurrent_sends_from_one_key_get_distinct_nonces(
    chain: Web3Chain, deployer: LocalAccount
) -> None:
    recipients = [Account.create().address for _ in range(12)]
    receipts = await asyncio.gather(
        *(chain.send(deployer, to=r, value=1_000 + i) for i, r in enumerate(recipients))
    )
    assert len({r.tx_hash for r in receipts}) == 12
    for i, recipient in enumerate(recipients):
        assert await chain.native_balance(recipient) == 1_000 + i


async def test_nonce_resynchronises_after_an_outside_send(
    chain: Web3Chain, anvil: AnvilNode, deployer: LocalAccount
) -> None:
    await chain.send(deployer, to=Account.create().address, value=1)
    # another client spends the next nonce of the same key behind the adapter's back
    other = Web3Chain(anvil.url)
    await other.send(deployer, to=Account.create().address, value=1)
    await other.close()
    receipt = await chain.send(deployer, to=Account.create().address, value=1)
    assert receipt.status == 1


async def test_unreachable_node_is_a_retryable_provider_error() -> None:
    closed = Web3Chain(f"http://127.0.0.1:{free_port()}", timeout=2)
    attempts = 0

    async def balance() -> int:
        nonlocal attempts
        attempts += 1
        return await closed.block_number()

    async def no_sleep(_: float) -> None:
        return None

    with pytest.raises(ChainUnavailableError) as caught:
        await call("chain", balance, policy=RetryPolicy(attempts=3, timeout=5), sleep=no_sleep)
    assert caught.value.retryable
    assert caught.value.code == "chain_unavailable"
    assert attempts == 3  # the resilience layer retried it
    await closed.close()


async def test_node_restarted_mid_session_recovers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    node = AnvilNode(log_path=tmp_path / "anvil.log")
    node.start()
    adapter = Web3Chain(node.url, timeout=2)
    try:
        assert await adapter.block_number() == 0
        node.stop()
        with pytest.raises(ChainUnavailableError):
            await adapter.block_number()
        node.start()
        assert await adapter.block_number() == 0
    finally:
        node.stop()
        await adapter.close()


async def test_a_transaction_reverted_when_mined_is_the_same_error_with_its_hash(
    chain: Web3Chain, deployer: LocalAccount, deployment: Deployment
) -> None:
    # Two transfers of the whole balance, both estimated against the same state, then mined
    # in one block: the second reverts on chain, after its gas was paid.
    owner: LocalAccount = Account.create()
    first, second = Account.create().address, Account.create().address
    await chain.send(deployer, to=owner.address, value=ONE_ETHER)
    await mint_usdc(chain, deployer, deployment.usdc, owner.address, 10_000_000)
    await chain.rpc("evm_setAutomine", [False])
    try:
        sends = [
            asyncio.create_task(send_usdc(chain, owner, deployment.usdc, to, 10_000_000))
            for to in (first, second)
        ]
        while not any(s.done() for s in sends):
            status = await chain.rpc("txpool_status")
            if int(status["pending"], 16) >= 2:
                break
            await asyncio.sleep(0.01)
        await chain.rpc("evm_mine")
        results = await asyncio.gather(*sends, return_exceptions=True)
    finally:
        await chain.rpc("evm_setAutomine", [True])
    reverted = [r for r in results if isinstance(r, ChainRevertedError)]
    assert len(reverted) == 1, results
    assert reverted[0].tx_hash  # it was mined: the error names the transaction
    assert reverted[0].error_name == "InsufficientBalance"
    mined = await chain.receipt(reverted[0].tx_hash)
    assert mined is not None
    assert mined.status == 0
    assert mined.fee_wei > 0
    received = [await chain.token_balance(deployment.usdc, to) for to in (first, second)]
    assert sorted(received) == [0, 10_000_000]


async def test_a_send_whose_receipt_does_not_come_is_pending_never_retryable(
    anvil: AnvilNode, deployer: LocalAccount
) -> None:
    impatient = Web3Chain(anvil.url, receipt_timeout=0.3)
    recipient = Account.create().address
    await impatient.rpc("evm_setAutomine", [False])
    try:
        with pytest.raises(ChainPendingError) as caught:
            await impatient.send(deployer, to=recipient, value=5)
        assert caught.value.code == "chain_tx_pending"
        assert not caught.value.retryable  # sending again would pay twice
        await impatient.rpc("evm_mine")
        receipt = await impatient.wait_for_receipt(caught.value.tx_hash)
        assert receipt.status == 1
        assert await impatient.native_balance(recipient) == 5
    finally:
        await impatient.rpc("evm_setAutomine", [True])
        await impatient.close()
