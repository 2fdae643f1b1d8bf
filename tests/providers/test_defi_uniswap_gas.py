"""Uniswap's oracle makes a pool's first trade in a new second cost more than an estimate
made in the previous second shows: the adapter's gas covers it; a bare estimate runs out."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from diboas.chain.artifacts import load
from diboas.chain.deploy import Deployment, deploy
from diboas.providers.chain import ChainRevertedError
from diboas.providers.chain_contract import Contract
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.defi import SwapQuote
from diboas.providers.defi_onchain import UniswapV2Swap
from tests.chain.fixtures import (  # noqa: F401 - fixtures
    anvil,
    chain,
    chain_tools,
    deployer,
    deployment,
    dev_account,
)
from tests.providers.defi_harness import POOL_ETH, POOL_USDC


async def _fresh_pool_then_first_trade(
    chain: Web3Chain,  # noqa: F811 - not the fixture here
    deployment: Deployment,  # noqa: F811
) -> tuple[UniswapV2Swap, LocalAccount, SwapQuote, int]:
    """A trader ready (funded, approved) before a new pool exists; the pool created in the
    latest block; the next block set a minute later — so the first trade's estimate (made in
    the pool's second) misses the oracle's first writes, which the mined trade then does."""
    owner = dev_account(0)
    token = await deploy(chain, owner, "TestUSDC")
    usdc = Contract(chain, token, load("TestUSDC").abi)
    weth = Contract(chain, deployment.weth, load("WETH9").abi)
    router = Contract(chain, deployment.uniswap_router, load("UniswapV2Router02").abi)
    trader: LocalAccount = Account.create()
    await chain.send(owner, to=trader.address, value=10**18)
    await usdc.send(owner, "mint", trader.address, 500 * 10**6)
    await usdc.send(trader, "approve", router.address, 500 * 10**6)
    await usdc.send(owner, "mint", owner.address, POOL_USDC)
    await weth.send(owner, "deposit", value=POOL_ETH)
    await usdc.send(owner, "approve", router.address, POOL_USDC)
    await weth.send(owner, "approve", router.address, POOL_ETH)
    deadline = int(time.time()) + 3600
    added = await router.send(
        owner, "addLiquidity", token, deployment.weth, POOL_USDC, POOL_ETH,
        POOL_USDC, POOL_ETH, owner.address, deadline,
    )  # fmt: skip
    created_at = (await chain.w3.eth.get_block(added.block_number))["timestamp"]
    await chain.rpc("evm_setNextBlockTimestamp", [created_at + 60])
    venue = UniswapV2Swap(
        chain, deployment.uniswap_router, {"USDC": (token, 6), "ETH": (deployment.weth, 18)}
    )
    quote = await venue.quote("USDC", "ETH", Decimal("500"), slippage_bps=50)
    return venue, trader, quote, deadline


async def test_a_pools_first_trade_in_a_new_second_has_gas_for_the_oracle(
    chain: Web3Chain,  # noqa: F811 - the fixture
    deployment: Deployment,  # noqa: F811
) -> None:
    # Sent with the estimate alone, the trade runs out of gas on chain (and says so) ...
    venue, trader, quote, deadline = await _fresh_pool_then_first_trade(chain, deployment)
    _, _, data = venue._swap_call(trader.address, quote, deadline)
    with pytest.raises(ChainRevertedError) as caught:
        await chain.send(trader, to=deployment.uniswap_router, data=data)
    assert caught.value.error_name == "OutOfGas"
    assert caught.value.tx_hash
    # ... the adapter's estimate and swap carry the oracle's writes: it lands, within it.
    venue, trader, quote, deadline = await _fresh_pool_then_first_trade(chain, deployment)
    estimate = await venue.estimate_gas(trader.address, quote, deadline=deadline)
    result = await venue.swap(trader, quote, deadline=deadline)
    assert result.amount_out == quote.amount_out
    assert result.gas_fee_wei <= estimate.max_cost_wei
