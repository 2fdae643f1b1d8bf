"""`diboas run`'s chain preparation: deploy once to a development chain, reuse while the
code is there, deploy again to a fresh chain, never deploy where addresses are configured."""

from __future__ import annotations

import asyncio
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account

from diboas.chain import setup
from diboas.chain.anvil import AnvilNode
from diboas.chain.protocols import ChainNotConfiguredError, swap_protocol, vault_protocol
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.defi import SandboxVault, SwapQuote
from diboas.settings import Settings
from tests.chain.fixtures import dev_account

ADDRESS_VARIABLES = (
    "DIBOAS_CHAIN_USDC_ADDRESS",
    "DIBOAS_DEFI_VAULT_ADDRESS",
    "DIBOAS_DEFI_WETH_ADDRESS",
    "DIBOAS_DEFI_UNISWAP_ROUTER_ADDRESS",
)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ADDRESS_VARIABLES:  # prepare() exports them; restored after the test
        monkeypatch.setenv(name, "")


def new_process() -> None:
    """What a restarted `diboas run` starts from: no exported addresses."""
    for name in ADDRESS_VARIABLES:
        os.environ[name] = ""


def dev_settings(url: str, data_dir: Path) -> Settings:
    return Settings(
        chain_rpc_url=url,
        data_dir=data_dir,
        chain_deployer_key=dev_account(2).key.to_0x_hex(),
    )


async def quote(settings: Settings) -> SwapQuote:
    chain = Web3Chain.from_settings(settings)
    try:
        return await swap_protocol(settings, chain).quote(
            "USDC", "ETH", Decimal("3000"), slippage_bps=50
        )
    finally:
        await chain.close()  # type: ignore[union-attr]


async def has_code(url: str, address: str) -> bool:
    chain = Web3Chain(url)
    try:
        return bool(await chain.code_at(address))
    finally:
        await chain.close()


async def block_number(url: str) -> int:
    chain = Web3Chain(url)
    try:
        return await chain.block_number()
    finally:
        await chain.close()


def test_deploys_once_then_reuses_and_redeploys_to_a_fresh_chain(
    chain_tools: None, tmp_path: Path, clean_environment: None
) -> None:
    node = AnvilNode(log_path=tmp_path / "anvil.log")
    node.start()
    try:
        settings = setup.prepare(dev_settings(node.url, tmp_path))
        assert settings.defi_vault_address
        assert os.environ["DIBOAS_DEFI_VAULT_ADDRESS"] == settings.defi_vault_address
        # the seeded pool trades at about 3,000 USDC per ETH
        assert Decimal("0.99") < asyncio.run(quote(settings)).amount_out < Decimal("1")
        blocks = asyncio.run(block_number(node.url))
        new_process()
        again = setup.prepare(dev_settings(node.url, tmp_path))
        assert again.defi_vault_address == settings.defi_vault_address
        assert asyncio.run(block_number(node.url)) == blocks  # reused: nothing was sent
        saved = json.loads((tmp_path / "chain" / "deployment-31337.json").read_text())
        assert saved["vault"] == settings.defi_vault_address

        node.stop()  # a fresh anvil has none of that code
        node.start()
        new_process()
        fresh = setup.prepare(dev_settings(node.url, tmp_path))
        assert asyncio.run(has_code(node.url, fresh.defi_vault_address))
    finally:
        node.stop()


def test_configured_addresses_are_used_as_they_are(anvil: AnvilNode, tmp_path: Path) -> None:
    vault = Account.create().address
    settings = Settings(chain_rpc_url=anvil.url, data_dir=tmp_path, defi_vault_address=vault)
    assert setup.prepare(settings) is settings
    assert not (tmp_path / "chain").exists()


def test_a_chain_without_addresses_or_key_is_refused(anvil: AnvilNode, tmp_path: Path) -> None:
    with pytest.raises(ChainNotConfiguredError, match="DIBOAS_CHAIN_DEPLOYER_KEY"):
        setup.prepare(Settings(chain_rpc_url=anvil.url, data_dir=tmp_path))


def test_no_chain_leaves_the_sandbox(tmp_path: Path) -> None:
    settings = Settings(chain_rpc_url="", data_dir=tmp_path)
    assert setup.prepare(settings) is settings
    assert isinstance(vault_protocol(settings, None), SandboxVault)
