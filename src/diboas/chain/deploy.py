"""Deploying the platform's contracts to a chain: the test USDC, the ERC-4626 vault over it,
and Uniswap v2 (WETH9, factory, router) from the published bytecode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount

from diboas.chain.artifacts import load
from diboas.providers.chain import ChainTransactionError
from diboas.providers.chain_web3 import Web3Chain


@dataclass(frozen=True, slots=True)
class Deployment:
    """Addresses of a deployment (checksummed)."""

    usdc: str
    vault: str
    weth: str
    uniswap_factory: str
    uniswap_router: str


def _constructor_args(abi: list[dict[str, Any]], args: tuple[Any, ...]) -> str:
    if not args:
        return ""
    constructor = next(item for item in abi if item.get("type") == "constructor")
    types = [i["type"] for i in constructor["inputs"]]
    return abi_encode(types, list(args)).hex()


async def deploy(chain: Web3Chain, deployer: LocalAccount, name: str, *args: Any) -> str:
    """Deploy the artifact ``name`` with constructor ``args``; its address."""
    artifact = load(name)
    data = artifact.bytecode + _constructor_args(artifact.abi, args)
    receipt = await chain.send(deployer, to=None, data=data)
    if receipt.contract_address is None:  # pragma: no cover - a creation always has one
        raise ChainTransactionError(f"deploying {name} created no contract")
    return receipt.contract_address


async def deploy_all(chain: Web3Chain, deployer: LocalAccount) -> Deployment:
    """Everything the DeFi adapters need, owned by ``deployer`` (the test USDC's minter)."""
    usdc = await deploy(chain, deployer, "TestUSDC")
    vault = await deploy(chain, deployer, "DiboasVault", usdc, "diBoaS USDC Vault", "dvUSDC", 6)
    weth = await deploy(chain, deployer, "WETH9")
    factory = await deploy(chain, deployer, "UniswapV2Factory", deployer.address)
    router = await deploy(chain, deployer, "UniswapV2Router02", factory, weth)
    return Deployment(usdc, vault, weth, factory, router)
