"""A real local chain for the tests: anvil from ``tools/chain/node_modules`` on a free port
of 127.0.0.1, with the platform's contracts and Uniswap v2 deployed.

``tools/chain/install`` runs first (idempotent; ``make test`` has normally done it): these
tests never skip — in CI and everywhere else a chain that cannot start fails them.

Import the fixtures into a conftest or test module (``from tests.chain.fixtures import *``).
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from diboas.chain.anvil import DEV_MNEMONIC, AnvilNode, AnvilUnavailableError
from diboas.chain.artifacts import CHAIN_TOOLS_DIR, UNISWAP_CONTRACTS, load, project_abis
from diboas.chain.deploy import Deployment, deploy_all
from diboas.providers.chain import ErrorDecoder
from diboas.providers.chain_web3 import Web3Chain

Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    """anvil's funded development account ``index`` (10,000 ether each)."""
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def all_abis() -> ErrorDecoder:
    return ErrorDecoder([*project_abis(), *(load(name).abi for name in UNISWAP_CONTRACTS)])


def install_chain_tools() -> None:
    install = subprocess.run(
        [str(CHAIN_TOOLS_DIR / "install")], capture_output=True, text=True, check=False
    )
    if install.returncode != 0:
        pytest.fail(f"tools/chain/install failed:\n{install.stdout}\n{install.stderr}")


def start_anvil(log: Path) -> AnvilNode:
    node = AnvilNode(log_path=log)
    try:
        node.start()
    except AnvilUnavailableError as exc:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        pytest.fail(f"anvil did not start: {exc}\n{tail}")
    return node


@pytest.fixture(scope="session")
def chain_tools() -> None:
    """tools/chain installed (anvil, solcjs, Uniswap bytecode)."""
    install_chain_tools()


@pytest.fixture(scope="session")
def anvil(chain_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    node = start_anvil(tmp_path_factory.mktemp("anvil") / "anvil.log")
    yield node
    node.stop()


@pytest.fixture(scope="session")
async def chain(anvil: AnvilNode) -> AsyncIterator[Web3Chain]:
    adapter = Web3Chain(anvil.url, timeout=5, receipt_timeout=20, decoder=all_abis())
    yield adapter
    await adapter.close()


@pytest.fixture(scope="session")
def deployer() -> LocalAccount:
    return dev_account(0)


@pytest.fixture(scope="session")
async def deployment(chain: Web3Chain, deployer: LocalAccount) -> Deployment:
    return await deploy_all(chain, deployer)
