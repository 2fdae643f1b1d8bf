"""Settings choose the protocols: the sandbox without a chain, the contracts with one; the
worker's periodic deposit scan credits deposits on the configured chain."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from diboas.chain import tasks, wallets
from diboas.chain.anvil import AnvilNode
from diboas.chain.deploy import Deployment
from diboas.chain.protocols import (
    ChainNotConfiguredError,
    swap_protocol,
    vault_protocol,
)
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.ledger import service as ledger
from diboas.ledger.models import Domain, OwnerType
from diboas.orchestration.jobs import PERIODIC, JobContext
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.defi import SandboxSwap, SandboxVault
from diboas.providers.defi_onchain import Erc4626Vault
from diboas.settings import Settings
from tests.chain.helpers import mint_usdc, new_user_id


def test_without_a_chain_the_sandbox_protocols_serve(tmp_path: Path) -> None:
    settings = Settings(chain_rpc_url="", data_dir=tmp_path)
    vault = vault_protocol(settings, Web3Chain.from_settings(settings))
    assert isinstance(vault, SandboxVault)
    assert vault.state_path == tmp_path / "sandbox" / "defi-vault.json"
    assert vault.apy == settings.defi_sandbox_apy
    assert isinstance(swap_protocol(settings, None), SandboxSwap)


async def test_a_chain_without_contract_addresses_is_refused(anvil: AnvilNode) -> None:
    settings = Settings(chain_rpc_url=anvil.url)
    chain = Web3Chain.from_settings(settings)
    assert chain is not None
    with pytest.raises(ChainNotConfiguredError, match="DIBOAS_DEFI_VAULT_ADDRESS"):
        vault_protocol(settings, chain)
    with pytest.raises(ChainNotConfiguredError, match="DIBOAS_DEFI_UNISWAP_ROUTER_ADDRESS"):
        swap_protocol(settings, chain)
    await chain.close()


async def test_with_a_chain_the_configured_vault_serves(
    anvil: AnvilNode, deployment: Deployment
) -> None:
    settings = Settings(chain_rpc_url=anvil.url, defi_vault_address=deployment.vault)
    chain = Web3Chain.from_settings(settings)
    vault = vault_protocol(settings, chain)
    assert isinstance(vault, Erc4626Vault)
    await vault.check()
    assert await vault.share_price() == Decimal("1")
    await chain.close()  # type: ignore[union-attr]


async def test_the_workers_periodic_scan_credits_deposits(
    anvil: AnvilNode,
    chain: Web3Chain,
    deployer: LocalAccount,
    deployment: Deployment,
    sessions: SessionFactory,
) -> None:
    assert PERIODIC["chain.scan_deposits"].handler is tasks.scan_deposits
    settings = Settings(
        chain_rpc_url=anvil.url,
        chain_usdc_address=deployment.usdc,
        chain_confirmations=1,
        chain_watch_from_block=await chain.block_number() + 1,
    )
    chain_id = await chain.chain_id()
    user = await new_user_id(sessions)
    wallet = await run_in_transaction(
        sessions, lambda s: wallets.deposit_wallet(s, settings, chain_id=chain_id, owner_id=user)
    )
    await mint_usdc(chain, deployer, deployment.usdc, wallet.address, 7_000_000)
    context = JobContext(sessions, settings, 0, {})
    await tasks.scan_deposits(context)
    await tasks.scan_deposits(context)  # repeated work credits nothing more

    async def balance(session: object) -> Decimal:
        account = await ledger.customer_account(
            session,  # type: ignore[arg-type]
            owner_type=OwnerType.USER,
            owner_id=user,
            domain=Domain.DEFI,
            asset="USDC",
        )
        return (await ledger.balance(session, account.id)).balance  # type: ignore[arg-type]

    assert await run_in_transaction(sessions, balance) == Decimal("7")
    await context.services["chain.rpc"].close()
