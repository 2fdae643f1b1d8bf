"""Contracts for a development chain, deployed by `diboas run` when a chain is configured
(``DIBOAS_CHAIN_RPC_URL``) but no vault address is (``DIBOAS_DEFI_VAULT_ADDRESS``).

With ``DIBOAS_CHAIN_DEPLOYER_KEY`` (on anvil, one of its funded development keys) the test
USDC, the vault and Uniswap v2 are deployed once, a USDC/WETH pool is seeded, and the
addresses are kept in ``DIBOAS_DATA_DIR/chain/deployment-<chain id>.json``; the next start
reuses them while their code is still on the chain (a fresh anvil has none: deploy again).
A chain with configured addresses (a testnet, mainnet) is used as configured, never deployed to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from pathlib import Path

import structlog
from eth_account import Account
from eth_account.signers.local import LocalAccount

from diboas.chain.artifacts import load
from diboas.chain.deploy import Deployment, deploy_all
from diboas.chain.protocols import SANDBOX_POOL, ChainNotConfiguredError
from diboas.providers.chain_contract import Contract
from diboas.providers.chain_web3 import Web3Chain
from diboas.settings import Settings

log = structlog.get_logger(__name__)


def deployment_file(settings: Settings, chain_id: int) -> Path:
    return settings.data_dir / "chain" / f"deployment-{chain_id}.json"


async def _still_deployed(chain: Web3Chain, deployment: Deployment) -> bool:
    for address in dataclasses.astuple(deployment):
        if not await chain.code_at(address):
            return False
    return True


async def seed_pool(chain: Web3Chain, deployer: LocalAccount, deployment: Deployment) -> None:
    """Liquidity for the USDC/WETH pair, at the sandbox pool's price (the deployer mints)."""
    usdc_amount, eth_amount = SANDBOX_POOL[("USDC", "ETH")]
    usdc = Contract(chain, deployment.usdc, load("TestUSDC").abi)
    weth = Contract(chain, deployment.weth, load("WETH9").abi)
    router = Contract(chain, deployment.uniswap_router, load("UniswapV2Router02").abi)
    await usdc.send(deployer, "mint", deployer.address, usdc_amount)
    await weth.send(deployer, "deposit", value=eth_amount)
    await usdc.send(deployer, "approve", router.address, usdc_amount)
    await weth.send(deployer, "approve", router.address, eth_amount)
    await router.send(
        deployer,
        "addLiquidity",
        deployment.usdc,
        deployment.weth,
        usdc_amount,
        eth_amount,
        usdc_amount,
        eth_amount,
        deployer.address,
        int(time.time()) + 600,
    )


async def ensure_deployment(settings: Settings) -> Deployment | None:
    """The development deployment (made now if needed), or None when there is nothing to
    deploy: no chain, or its contract addresses are configured."""
    chain = Web3Chain.from_settings(settings)
    if chain is None or settings.defi_vault_address.strip():
        return None
    try:
        if settings.chain_deployer_key is None:
            raise ChainNotConfiguredError(
                "a chain is configured without contract addresses: set DIBOAS_DEFI_VAULT_ADDRESS "
                "(and the others), or DIBOAS_CHAIN_DEPLOYER_KEY to deploy them"
            )
        path = deployment_file(settings, await chain.chain_id())
        if path.is_file():
            known = Deployment(**json.loads(path.read_text()))
            if await _still_deployed(chain, known):
                return known
        deployer: LocalAccount = Account.from_key(settings.chain_deployer_key.get_secret_value())
        deployment = await deploy_all(chain, deployer)
        await seed_pool(chain, deployer, deployment)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dataclasses.asdict(deployment), indent=1))
        log.info("contracts deployed", **dataclasses.asdict(deployment))
        return deployment
    finally:
        await chain.close()


def prepare(settings: Settings) -> Settings:
    """For `diboas run`: deploy if needed and return the settings with the addresses. They
    are exported to the environment too, so server processes started from it see them."""
    deployment = asyncio.run(ensure_deployment(settings))
    if deployment is None:
        return settings
    values = {
        "chain_usdc_address": deployment.usdc,
        "defi_vault_address": deployment.vault,
        "defi_weth_address": deployment.weth,
        "defi_uniswap_router_address": deployment.uniswap_router,
    }
    for name, value in values.items():
        os.environ[f"DIBOAS_{name.upper()}"] = value
    return settings.model_copy(update=values)
