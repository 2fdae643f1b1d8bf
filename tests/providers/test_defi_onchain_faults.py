"""The on-chain DeFi adapters when the node goes away: a retryable provider error, before
anything is sent."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account

from diboas.chain.anvil import AnvilNode
from diboas.chain.deploy import deploy_all
from diboas.providers.chain import ChainError, ChainUnavailableError
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.defi_onchain import Erc4626Vault, UniswapV2Swap
from diboas.providers.resilience import RetryPolicy, call
from tests.chain.fixtures import chain_tools, dev_account  # noqa: F401 - fixture


async def test_a_dropped_node_is_a_retryable_error_for_every_operation(
    chain_tools: None,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    node = AnvilNode(log_path=tmp_path / "anvil.log")
    node.start()
    chain = Web3Chain(node.url, timeout=2)
    try:
        deployment = await deploy_all(chain, dev_account(0))
        vault = Erc4626Vault(chain, deployment.vault)
        swap = UniswapV2Swap(
            chain,
            deployment.uniswap_router,
            {"USDC": (deployment.usdc, 6), "ETH": (deployment.weth, 18)},
        )
        assert await vault.total_assets() == 0
        node.stop()
        owner = Account.create()
        operations = [
            vault.total_assets(),
            vault.share_price(),
            vault.estimate_gas(owner.address, "deposit", Decimal("1")),
            vault.deposit(owner, Decimal("1")),
            vault.redeem(owner, Decimal("1")),
            swap.quote("USDC", "ETH", Decimal("1"), slippage_bps=50),
        ]
        for operation in operations:
            with pytest.raises(ChainUnavailableError) as caught:
                await operation
            assert caught.value.retryable
            assert caught.value.code == "chain_unavailable"

        attempts = 0

        async def read() -> Decimal:
            nonlocal attempts
            attempts += 1
            if attempts == 2:
                node.start()  # the node is back: the retry succeeds
            return await vault.share_price()

        async def no_wait(_: float) -> None:
            return None

        # the retry reaches the node; a fresh anvil has no vault there, which is not retried
        with pytest.raises(ChainError) as after:
            await call("chain", read, policy=RetryPolicy(attempts=3, timeout=5), sleep=no_wait)
        assert after.value.code == "chain_no_contract"
        assert not after.value.retryable
        assert attempts == 2
    finally:
        node.stop()
        await chain.close()
