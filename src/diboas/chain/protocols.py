"""The DeFi protocols and deposit watcher the settings choose: on the configured chain
(``DIBOAS_CHAIN_RPC_URL``), or the deterministic sandbox when none is configured."""

from __future__ import annotations

from diboas.chain.watcher import DepositWatcher, WatchedToken
from diboas.ledger.models import Domain
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.defi import SandboxSwap, SandboxVault, SwapProtocol, VaultProtocol
from diboas.providers.defi_onchain import Erc4626Vault, UniswapV2Swap
from diboas.settings import Settings

# The sandbox pool: 3,000,000 USDC against 1,000 ETH (3,000 USDC per ETH before fees).
SANDBOX_POOL = {("USDC", "ETH"): (3_000_000 * 10**6, 1_000 * 10**18)}
SCALES = {"USDC": 6, "ETH": 18}


class ChainNotConfiguredError(ValueError):
    """A chain is configured but a contract address it needs is not."""


def _require(value: str, variable: str) -> str:
    if not value.strip():
        raise ChainNotConfiguredError(f"{variable} is required when DIBOAS_CHAIN_RPC_URL is set")
    return value.strip()


def vault_protocol(settings: Settings, chain: Web3Chain | None) -> VaultProtocol:
    """The ERC-4626 vault at ``DIBOAS_DEFI_VAULT_ADDRESS``, or the sandbox vault (its state
    under ``DIBOAS_DATA_DIR/sandbox``)."""
    if chain is None:
        return SandboxVault(
            apy=settings.defi_sandbox_apy,
            state_path=settings.data_dir / "sandbox" / "defi-vault.json",
        )
    return Erc4626Vault(chain, _require(settings.defi_vault_address, "DIBOAS_DEFI_VAULT_ADDRESS"))


def swap_protocol(settings: Settings, chain: Web3Chain | None) -> SwapProtocol:
    """Uniswap v2 at ``DIBOAS_DEFI_UNISWAP_ROUTER_ADDRESS`` (USDC and WETH), or the sandbox pool."""
    if chain is None:
        return SandboxSwap(dict(SANDBOX_POOL), dict(SCALES))
    router = _require(settings.defi_uniswap_router_address, "DIBOAS_DEFI_UNISWAP_ROUTER_ADDRESS")
    usdc = _require(settings.chain_usdc_address, "DIBOAS_CHAIN_USDC_ADDRESS")
    weth = _require(settings.defi_weth_address, "DIBOAS_DEFI_WETH_ADDRESS")
    return UniswapV2Swap(chain, router, {"USDC": (usdc, 6), "ETH": (weth, 18)})


def deposit_watcher(settings: Settings, chain: Web3Chain, *, chain_id: int) -> DepositWatcher:
    """The watcher for the configured chain: USDC (when its address is set) and ether."""
    tokens = []
    if settings.chain_usdc_address.strip():
        tokens.append(WatchedToken("USDC", settings.chain_usdc_address.strip(), 6))
    return DepositWatcher(
        chain,
        chain_id=chain_id,
        confirmations=settings.chain_confirmations,
        tokens=tokens,
        native_scale=18 if settings.chain_watch_native else None,
        start_block=settings.chain_watch_from_block,
        batch_blocks=settings.chain_watch_batch_blocks,
        domain=Domain(settings.chain_deposit_domain),
    )
