"""Each DeFi implementation with what a conformance test needs around it: funded owners and a
way to make yield arrive. The on-chain ones run on the session's anvil, a fresh vault (or a
fresh token pair) per test so tests do not see each other's state."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from eth_account import Account
from eth_account.signers.local import LocalAccount

from diboas.chain.artifacts import load
from diboas.chain.deploy import Deployment, deploy
from diboas.providers.chain_contract import Contract
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.defi import SandboxSwap, SandboxVault, SwapProtocol, VaultProtocol, to_units
from diboas.providers.defi_onchain import Erc4626Vault, UniswapV2Swap

ETHER = 10**18
# The same pool on both sides: 300,000 USDC against 100 ETH.
POOL_USDC = 300_000 * 10**6
POOL_ETH = 100 * ETHER


@dataclass
class VaultHarness:
    vault: VaultProtocol
    new_owner: Callable[[Decimal], Awaitable[LocalAccount]]  # funded with that much USDC
    donate: Callable[[Decimal], Awaitable[None]]  # yield into the vault
    usdc_of: Callable[[str], Awaitable[Decimal | None]]  # None where no token exists


@dataclass
class SwapHarness:
    venue: SwapProtocol
    new_owner: Callable[[Decimal], Awaitable[LocalAccount]]
    usdc_of: Callable[[str], Awaitable[Decimal | None]]
    eth_of: Callable[[str], Awaitable[Decimal | None]]


async def _nothing(_: str) -> Decimal | None:
    return None


def sandbox_vault() -> VaultHarness:
    vault = SandboxVault()

    async def new_owner(_: Decimal) -> LocalAccount:
        return Account.create()

    async def donate(amount: Decimal) -> None:
        vault.donate(amount)

    return VaultHarness(vault, new_owner, donate, _nothing)


def sandbox_swap() -> SwapHarness:
    venue = SandboxSwap({("USDC", "ETH"): (POOL_USDC, POOL_ETH)}, {"USDC": 6, "ETH": 18})

    async def new_owner(_: Decimal) -> LocalAccount:
        return Account.create()

    return SwapHarness(venue, new_owner, _nothing, _nothing)


async def _funded_owner(
    chain: Web3Chain, deployer: LocalAccount, usdc: Contract, amount: Decimal
) -> LocalAccount:
    owner: LocalAccount = Account.create()
    await chain.send(deployer, to=owner.address, value=ETHER)  # gas money
    await usdc.send(deployer, "mint", owner.address, to_units(amount, 6))
    return owner


async def onchain_vault(
    chain: Web3Chain, deployer: LocalAccount, deployment: Deployment
) -> VaultHarness:
    address = await deploy(
        chain, deployer, "DiboasVault", deployment.usdc, "diBoaS USDC Vault", "dvUSDC", 6
    )
    vault = Erc4626Vault(chain, address)
    await vault.check()
    usdc = Contract(chain, deployment.usdc, load("TestUSDC").abi)

    async def new_owner(amount: Decimal) -> LocalAccount:
        return await _funded_owner(chain, deployer, usdc, amount)

    async def donate(amount: Decimal) -> None:
        # Tokens sent to the vault are its assets: the share price rises for every holder.
        await usdc.send(deployer, "mint", address, to_units(amount, 6))

    async def usdc_of(owner: str) -> Decimal:
        return Decimal(int(await usdc.read("balanceOf", owner))).scaleb(-6)

    return VaultHarness(vault, new_owner, donate, usdc_of)


async def onchain_swap(
    chain: Web3Chain, deployer: LocalAccount, deployment: Deployment
) -> SwapHarness:
    token = await deploy(chain, deployer, "TestUSDC")  # a fresh token: a fresh pair per test
    usdc = Contract(chain, token, load("TestUSDC").abi)
    weth = Contract(chain, deployment.weth, load("WETH9").abi)
    router = Contract(chain, deployment.uniswap_router, load("UniswapV2Router02").abi)
    await usdc.send(deployer, "mint", deployer.address, POOL_USDC)
    await weth.send(deployer, "deposit", value=POOL_ETH)
    await usdc.send(deployer, "approve", router.address, POOL_USDC)
    await weth.send(deployer, "approve", router.address, POOL_ETH)
    await router.send(
        deployer,
        "addLiquidity",
        token,
        deployment.weth,
        POOL_USDC,
        POOL_ETH,
        POOL_USDC,
        POOL_ETH,
        deployer.address,
        int(time.time()) + 600,
    )
    venue = UniswapV2Swap(
        chain, deployment.uniswap_router, {"USDC": (token, 6), "ETH": (deployment.weth, 18)}
    )

    async def new_owner(amount: Decimal) -> LocalAccount:
        return await _funded_owner(chain, deployer, usdc, amount)

    async def usdc_of(owner: str) -> Decimal:
        return Decimal(int(await usdc.read("balanceOf", owner))).scaleb(-6)

    async def eth_of(owner: str) -> Decimal:
        return Decimal(int(await weth.read("balanceOf", owner))).scaleb(-18)

    return SwapHarness(venue, new_owner, usdc_of, eth_of)
