"""The vaults behind the strategies, the omnibus wallet that holds every user's shares, and
gas priced in USD.

A strategy names a vault slot: ``core`` is the vault ``chain.protocols.vault_protocol``
chooses from the settings (the deterministic sandbox vault without a chain, the ERC-4626
contract at ``DIBOAS_DEFI_VAULT_ADDRESS`` with one); ``growth`` is a second sandbox vault with
its own state and APY, or on a chain the contract at ``DIBOAS_DEFI_GROWTH_VAULT_ADDRESS`` (its
strategy is unavailable while that is not set). Tests hand in their own under ``VAULTS``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from decimal import ROUND_UP, Decimal
from typing import Any, TypeVar

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.chain import repository as chain_repository
from diboas.chain import wallets
from diboas.chain.protocols import vault_protocol
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.defi.errors import VaultUnavailableError
from diboas.ledger.models import PLATFORM_OWNER_ID, OwnerType
from diboas.market.prices import PriceService, service_for
from diboas.providers.chain import GasQuote
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.defi import SandboxVault, VaultProtocol
from diboas.providers.defi_onchain import Erc4626Vault
from diboas.providers.resilience import ProviderError
from diboas.settings import Settings

VAULTS = "defi.vaults"
OMNIBUS = "defi.omnibus"
T = TypeVar("T")
_CHAIN = "chain.rpc"  # shared with chain.tasks: one client (and nonce cache) per process

# Without a chain the omnibus wallet only names the sandbox vault's holder: a fixed,
# public key is enough there (it never holds anything real).
_SANDBOX_OMNIBUS_KEY = keccak(text="diboas sandbox omnibus wallet")


def _chain(services: dict[str, Any], settings: Settings) -> Web3Chain | None:
    existing = services.get(_CHAIN)
    if isinstance(existing, Web3Chain):
        return existing
    chain = Web3Chain.from_settings(settings)
    if chain is not None:
        services[_CHAIN] = chain
    return chain


def vaults_for(services: dict[str, Any], settings: Settings) -> dict[str, VaultProtocol]:
    """The vault of each slot (built once per app or worker)."""
    existing = services.get(VAULTS)
    if isinstance(existing, dict):
        return existing
    chain = _chain(services, settings)
    built: dict[str, VaultProtocol] = {"core": vault_protocol(settings, chain)}
    if chain is None:
        built["growth"] = SandboxVault(
            name="diBoaS USDC Growth Vault (sandbox)",
            apy=settings.defi_growth_sandbox_apy,
            state_path=settings.data_dir / "sandbox" / "defi-growth-vault.json",
        )
    elif settings.defi_growth_vault_address.strip():
        built["growth"] = Erc4626Vault(
            chain, settings.defi_growth_vault_address.strip(), name="diBoaS USDC Growth Vault"
        )
    services[VAULTS] = built
    return built


async def omnibus_for(
    services: dict[str, Any], settings: Settings, sessions: SessionFactory
) -> LocalAccount:
    """The platform wallet that deposits into the vaults and holds every user's shares: on a
    chain the hot wallet (``DIBOAS_DEFI_HOT_WALLET_KEY``, kept sealed in ``chain_wallets``)."""
    existing = services.get(OMNIBUS)
    if isinstance(existing, LocalAccount):
        return existing
    chain = _chain(services, settings)
    if chain is None:
        account: LocalAccount = Account.from_key(_SANDBOX_OMNIBUS_KEY)
    else:
        chain_id = await chain.chain_id()

        async def open_hot(session: AsyncSession) -> LocalAccount:
            row = await chain_repository.find_wallet(
                session,
                chain_id=chain_id,
                owner_type=OwnerType.PLATFORM,
                owner_id=PLATFORM_OWNER_ID,
                purpose=wallets.HOT,
            )
            if row is not None:
                wallet = wallets.Wallet.of(row)
            elif settings.defi_hot_wallet_key is None:
                raise VaultUnavailableError(
                    "DeFi is not set up on this chain: DIBOAS_DEFI_HOT_WALLET_KEY is not set"
                )
            else:
                wallet = await wallets.import_hot_wallet(
                    session,
                    settings,
                    chain_id=chain_id,
                    private_key=settings.defi_hot_wallet_key.get_secret_value(),
                )
            return await wallets.signer(session, settings, chain_id=chain_id, wallet=wallet)

        account = await run_in_transaction(sessions, open_hot)
    services[OMNIBUS] = account
    return account


def prices_for(services: dict[str, Any]) -> PriceService:
    """The app's price service (gas is priced in USD through it)."""
    return service_for(services)


def wei_to_usd(wei: int, eth_price: Decimal) -> Decimal:
    """Gas in USD, rounded up to the cent (a charge: in the platform's favour)."""
    return (Decimal(wei).scaleb(-18) * eth_price).quantize(Decimal("0.01"), rounding=ROUND_UP)


async def gas_usd(prices: PriceService, gas: GasQuote | int) -> Decimal:
    """What a gas estimate (its upper bound) or a gas amount paid (wei) costs in USD."""
    wei = gas if isinstance(gas, int) else gas.max_cost_wei
    eth = await prices.price_usd("ETH")
    return wei_to_usd(wei, eth.price_usd)


async def read_vault(call: Awaitable[T]) -> T:
    """A vault read for a request: a vault (chain) out of reach is 503, never a crash."""
    try:
        return await call
    except ProviderError as error:
        raise VaultUnavailableError(
            "the vault cannot be read now; try again", details={"code": error.code}
        ) from error
