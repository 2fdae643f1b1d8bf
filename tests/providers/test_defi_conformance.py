"""One conformance suite for every DeFi implementation: the deterministic sandbox and the
on-chain adapters (ERC-4626 vault, Uniswap v2) on a real anvil."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from eth_account.signers.local import LocalAccount

from diboas.chain.deploy import Deployment
from diboas.kit.errors import InvalidAmountError
from diboas.providers.chain import ChainRevertedError
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.defi import uniswap_amount_out
from tests.chain.fixtures import anvil, chain, chain_tools, deployer, deployment  # noqa: F401
from tests.providers.defi_harness import (
    POOL_ETH,
    POOL_USDC,
    SwapHarness,
    VaultHarness,
    onchain_swap,
    onchain_vault,
    sandbox_swap,
    sandbox_vault,
)

D = Decimal


# The chain fixtures are session-wide (one anvil), so the sandbox cases share them too.
@pytest.fixture(params=["sandbox", "erc4626"])
async def harness(
    request: pytest.FixtureRequest,
    chain: Web3Chain,  # noqa: F811 - the fixture of that name
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> VaultHarness:
    if request.param == "sandbox":
        return sandbox_vault()
    return await onchain_vault(chain, deployer, deployment)


@pytest.fixture(params=["sandbox", "uniswap_v2"])
async def swaps(
    request: pytest.FixtureRequest,
    chain: Web3Chain,  # noqa: F811
    deployer: LocalAccount,  # noqa: F811
    deployment: Deployment,  # noqa: F811
) -> SwapHarness:
    if request.param == "sandbox":
        return sandbox_swap()
    return await onchain_swap(chain, deployer, deployment)


# --- vaults -----------------------------------------------------------------------------------


async def test_first_deposit_mints_shares_one_for_one(harness: VaultHarness) -> None:
    vault = harness.vault
    owner = await harness.new_owner(D("100"))
    assert await vault.preview_deposit(D("100")) == D("100")
    move = await vault.deposit(owner, D("100"))
    assert (move.assets, move.shares) == (D("100"), D("100"))
    assert await vault.shares_of(owner.address) == D("100")
    assert await vault.total_assets() == D("100")
    assert await vault.total_shares() == D("100")
    assert await vault.share_price() == D("1")
    assert move.gas_fee_wei > 0
    assert await harness.usdc_of(owner.address) in (None, D("0"))


async def test_yield_raises_the_share_price_for_every_holder(harness: VaultHarness) -> None:
    vault = harness.vault
    alice, bob = await harness.new_owner(D("300")), await harness.new_owner(D("100"))
    await vault.deposit(alice, D("300"))
    await vault.deposit(bob, D("100"))
    await harness.donate(D("40"))  # 10 % on 400
    assert await vault.total_assets() == D("440")
    # one share was 1 USDC; +10 %, less the virtual share's part, rounded down
    assert await vault.share_price() == D("1.099999")
    expected_bob = await vault.preview_redeem(D("100"))
    assert expected_bob == D("109.999999")  # rounding favours the vault, by one unit
    move = await vault.redeem(bob, D("100"))
    assert move.assets == expected_bob
    assert await vault.shares_of(bob.address) == 0
    usdc = await harness.usdc_of(bob.address)
    assert usdc is None or usdc == expected_bob
    # alice's 300 shares still carry her part of the yield
    assert await vault.preview_redeem(D("300")) == D("330")  # the unit bob left behind


async def test_withdraw_pays_exact_assets_and_burns_the_previewed_shares(
    harness: VaultHarness,
) -> None:
    vault = harness.vault
    owner = await harness.new_owner(D("50"))
    await vault.deposit(owner, D("50"))
    await harness.donate(D("5"))
    shares_needed = await vault.preview_withdraw(D("22"))
    move = await vault.withdraw(owner, D("22"))
    assert move.assets == D("22")
    assert move.shares == shares_needed
    assert await vault.shares_of(owner.address) == D("50") - shares_needed


async def test_redeeming_more_than_owned_reverts_and_changes_nothing(
    harness: VaultHarness,
) -> None:
    vault = harness.vault
    owner = await harness.new_owner(D("10"))
    await vault.deposit(owner, D("10"))
    with pytest.raises(ChainRevertedError) as caught:
        await vault.redeem(owner, D("10.000001"))
    assert caught.value.code == "chain_tx_reverted"
    assert caught.value.error_name == "ExceededMaxRedeem"
    assert caught.value.args_decoded[1:] == (10_000_001, 10_000_000)
    assert not caught.value.retryable
    assert await vault.shares_of(owner.address) == D("10")
    assert await vault.total_assets() == D("10")


async def test_withdrawing_more_than_owned_reverts(harness: VaultHarness) -> None:
    owner = await harness.new_owner(D("10"))
    await harness.vault.deposit(owner, D("10"))
    with pytest.raises(ChainRevertedError) as caught:
        await harness.vault.withdraw(owner, D("11"))
    assert caught.value.error_name == "ExceededMaxWithdraw"


async def test_gas_estimates_bound_what_each_operation_pays(harness: VaultHarness) -> None:
    vault = harness.vault
    owner = await harness.new_owner(D("80"))
    # the first deposit needs an approval too: it is in the estimate
    estimate = await vault.estimate_gas(owner.address, "deposit", D("80"))
    move = await vault.deposit(owner, D("80"))
    assert 0 < move.gas_fee_wei <= estimate.max_cost_wei
    for operation, amount in (("withdraw", D("30")), ("redeem", D("50"))):
        estimate = await vault.estimate_gas(owner.address, operation, amount)  # type: ignore[arg-type]
        move = await getattr(vault, operation)(owner, amount)
        assert 0 < move.gas_fee_wei <= estimate.max_cost_wei


async def test_estimating_what_would_revert_is_the_same_refusal(harness: VaultHarness) -> None:
    owner = await harness.new_owner(D("5"))
    await harness.vault.deposit(owner, D("5"))
    with pytest.raises(ChainRevertedError) as caught:
        await harness.vault.estimate_gas(owner.address, "redeem", D("6"))
    assert caught.value.error_name == "ExceededMaxRedeem"
    with pytest.raises(ChainRevertedError) as caught:
        await harness.vault.estimate_gas(owner.address, "withdraw", D("6"))
    assert caught.value.error_name == "ExceededMaxWithdraw"


@pytest.mark.parametrize("amount", [D("0"), D("-1"), D("0.0000001")])
async def test_bad_amounts_are_refused_before_anything_runs(
    harness: VaultHarness, amount: Decimal
) -> None:
    owner = await harness.new_owner(D("1"))
    with pytest.raises(InvalidAmountError):
        await harness.vault.deposit(owner, amount)
    assert await harness.vault.total_assets() == 0


# --- swaps ------------------------------------------------------------------------------------


async def test_quote_follows_the_constant_product_formula(swaps: SwapHarness) -> None:
    quote = await swaps.venue.quote("USDC", "ETH", D("3000"), slippage_bps=50)
    raw_out = uniswap_amount_out(3000 * 10**6, POOL_USDC, POOL_ETH)
    assert quote.amount_out == Decimal(raw_out).scaleb(-18)
    assert quote.minimum_out == Decimal(raw_out * 9950 // 10_000).scaleb(-18)
    assert D("0.98") < quote.amount_out < D("1")  # about 1 ETH, less fee and price impact


async def test_swap_pays_the_quoted_amount_and_moves_the_price(swaps: SwapHarness) -> None:
    trader = await swaps.new_owner(D("3000"))
    quote = await swaps.venue.quote("USDC", "ETH", D("3000"), slippage_bps=50)
    result = await swaps.venue.swap(trader, quote, deadline=int(time.time()) + 300)
    assert result.amount_out == quote.amount_out
    assert result.gas_fee_wei > 0
    assert await swaps.usdc_of(trader.address) in (None, D("0"))
    assert await swaps.eth_of(trader.address) in (None, quote.amount_out)
    again = await swaps.venue.quote("USDC", "ETH", D("3000"), slippage_bps=50)
    assert again.amount_out < quote.amount_out


async def test_a_stale_quote_beyond_its_slippage_reverts(swaps: SwapHarness) -> None:
    slow, fast = await swaps.new_owner(D("3000")), await swaps.new_owner(D("30000"))
    stale = await swaps.venue.quote("USDC", "ETH", D("3000"), slippage_bps=10)
    big = await swaps.venue.quote("USDC", "ETH", D("30000"), slippage_bps=100)
    await swaps.venue.swap(fast, big, deadline=int(time.time()) + 300)
    with pytest.raises(ChainRevertedError) as caught:
        await swaps.venue.swap(slow, stale, deadline=int(time.time()) + 300)
    assert caught.value.reason == "UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"
    assert await swaps.usdc_of(slow.address) in (None, D("3000"))


async def test_a_swap_past_its_deadline_reverts(swaps: SwapHarness) -> None:
    trader = await swaps.new_owner(D("100"))
    quote = await swaps.venue.quote("USDC", "ETH", D("100"), slippage_bps=50)
    past = int(time.time()) - 60
    with pytest.raises(ChainRevertedError) as caught:
        await swaps.venue.estimate_gas(trader.address, quote, deadline=past)
    assert caught.value.reason == "UniswapV2Router: EXPIRED"
    with pytest.raises(ChainRevertedError) as caught:
        await swaps.venue.swap(trader, quote, deadline=past)
    assert caught.value.reason == "UniswapV2Router: EXPIRED"


async def test_swap_gas_estimate_bounds_what_the_swap_pays(swaps: SwapHarness) -> None:
    trader = await swaps.new_owner(D("500"))
    quote = await swaps.venue.quote("USDC", "ETH", D("500"), slippage_bps=50)
    deadline = int(time.time()) + 300
    estimate = await swaps.venue.estimate_gas(trader.address, quote, deadline=deadline)
    result = await swaps.venue.swap(trader, quote, deadline=deadline)
    assert 0 < result.gas_fee_wei <= estimate.max_cost_wei
