"""The on-chain DeFi adapters: an ERC-4626 vault and a Uniswap v2 router, through the chain
RPC adapter. Interfaces, errors and the sandbox are in ``providers.defi``.

Token approvals are exact (never unlimited): a custodial key allows a contract to take only
what the operation needs, and the approval is its own transaction, sent (and paid for) only
when the current allowance is short.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from eth_account.signers.local import LocalAccount

from diboas.chain.artifacts import load
from diboas.providers.chain import ChainError, GasQuote, TxReceipt
from diboas.providers.chain_contract import Contract
from diboas.providers.chain_web3 import Web3Chain
from diboas.providers.defi import (
    SwapQuote,
    SwapResult,
    VaultMove,
    VaultOperation,
    from_units,
    minimum_after_slippage,
    to_units,
)

MAX_UINT256 = 2**256 - 1
# A pair's first trade in a new second writes its two cumulative-price slots (the TWAP oracle),
# from zero on a new pool: 2 × 22,100 gas that an estimate made in the latest block's second
# does not see. Added to every swap's limit (only gas used is paid).
UNISWAP_ORACLE_UPDATE_GAS = 2 * 22_100


async def _allowance_override(
    chain: Web3Chain, token: Contract, owner: str, spender: str
) -> dict[str, Any] | None:
    """Chain state in which ``owner`` has allowed ``spender`` everything: the storage slot the
    token's ``allowance`` reads (``eth_createAccessList``) whose value is the allowance, set
    to the maximum — and checked by reading the allowance back under that override. None when
    no slot passes the check (a token whose storage does not show it plainly)."""
    data = token.encode("allowance", owner, spender)
    current = int(await token.read("allowance", owner, spender))
    read = await chain.storage_read_by(owner, to=token.address, data=data)
    for slot in read.get(token.address, []):
        if await chain.storage_at(token.address, slot) != current:
            continue
        override: dict[str, Any] = {token.address: {"stateDiff": {slot: "0x" + "ff" * 32}}}
        raw = await chain.call(token.address, data, state_override=override)
        if int.from_bytes(raw[:32], "big") == MAX_UINT256:
            return override
    return None


async def _gas_after_approval(
    chain: Web3Chain,
    token: Contract,
    owner: str,
    spender: str,
    raw_amount: int,
    *,
    to: str,
    data: str,
    extra_gas: int = 0,
) -> GasQuote:
    """Gas for a step that spends ``raw_amount`` of ``token``, plus its approval if the current
    allowance is short (the step then estimated as if the approval were mined)."""
    if int(await token.read("allowance", owner, spender)) >= raw_amount:
        return await chain.estimate(owner, to=to, data=data, extra_gas=extra_gas)
    approve = await chain.estimate(
        owner, to=token.address, data=token.encode("approve", spender, raw_amount)
    )
    override = await _allowance_override(chain, token, owner, spender)
    if override is None:
        raise ChainError(
            "this step cannot be estimated before its approval is mined",
            code="chain_estimate_unavailable",
        )
    step = await chain.estimate(
        owner, to=to, data=data, state_override=override, extra_gas=extra_gas
    )
    return approve.then(step)


def _fees(*receipts: TxReceipt) -> tuple[tuple[str, ...], int]:
    return tuple(r.tx_hash for r in receipts), sum(r.fee_wei for r in receipts)


async def _approve_if_short(
    token: Contract, owner: LocalAccount, spender: str, raw_amount: int
) -> list[TxReceipt]:
    allowed = int(await token.read("allowance", owner.address, spender))
    if allowed >= raw_amount:
        return []
    return [await token.send(owner, "approve", spender, raw_amount)]


class Erc4626Vault:
    """An ERC-4626 vault on chain (``providers.defi.VaultProtocol``)."""

    def __init__(
        self,
        chain: Web3Chain,
        address: str,
        *,
        asset: str = "USDC",
        asset_scale: int = 6,
        share_scale: int = 6,
        name: str = "diBoaS USDC Vault",
    ) -> None:
        self.chain = chain
        self.vault = Contract(chain, address, load("DiboasVault").abi)
        self.name = name
        self.asset = asset
        self.asset_scale = asset_scale
        self.share_scale = share_scale
        self._token: Contract | None = None

    @property
    def address(self) -> str:
        return self.vault.address

    async def token(self) -> Contract:
        """The vault's underlying ERC-20."""
        if self._token is None:
            address = await self.vault.read("asset")
            self._token = Contract(self.chain, address, load("TestUSDC").abi)
        return self._token

    async def check(self) -> None:
        """Refuse a vault whose decimals differ from the configured scales."""
        token = await self.token()
        decimals = (int(await token.read("decimals")), int(await self.vault.read("decimals")))
        if decimals != (self.asset_scale, self.share_scale):
            raise ValueError(
                f"vault {self.address} has decimals {decimals}, configured "
                f"{(self.asset_scale, self.share_scale)}"
            )

    async def total_assets(self) -> Decimal:
        return from_units(int(await self.vault.read("totalAssets")), self.asset_scale)

    async def total_shares(self) -> Decimal:
        return from_units(int(await self.vault.read("totalSupply")), self.share_scale)

    async def share_price(self) -> Decimal:
        raw = await self.vault.read("convertToAssets", 10**self.share_scale)
        return from_units(int(raw), self.asset_scale)

    async def shares_of(self, owner: str) -> Decimal:
        return from_units(int(await self.vault.read("balanceOf", owner)), self.share_scale)

    async def preview_deposit(self, assets: Decimal) -> Decimal:
        raw = await self.vault.read("previewDeposit", to_units(assets, self.asset_scale))
        return from_units(int(raw), self.share_scale)

    async def preview_redeem(self, shares: Decimal) -> Decimal:
        raw_shares = to_units(shares, self.share_scale, field="shares")
        return from_units(int(await self.vault.read("previewRedeem", raw_shares)), self.asset_scale)

    async def preview_withdraw(self, assets: Decimal) -> Decimal:
        raw = await self.vault.read("previewWithdraw", to_units(assets, self.asset_scale))
        return from_units(int(raw), self.share_scale)

    async def estimate_gas(
        self, owner: str, operation: VaultOperation, amount: Decimal
    ) -> GasQuote:
        if operation == "deposit":
            raw = to_units(amount, self.asset_scale)
            data = self.vault.encode("deposit", raw, owner)
            return await _gas_after_approval(
                self.chain, await self.token(), owner, self.address, raw, to=self.address, data=data
            )
        if operation == "redeem":
            raw = to_units(amount, self.share_scale, field="shares")
        else:
            raw = to_units(amount, self.asset_scale)
        data = self.vault.encode(operation, raw, owner, owner)
        return await self.chain.estimate(owner, to=self.address, data=data)

    async def deposit(self, owner: LocalAccount, assets: Decimal) -> VaultMove:
        raw_assets = to_units(assets, self.asset_scale)
        receipts = await _approve_if_short(
            await self.token(), owner, self.vault.address, raw_assets
        )
        receipt = await self.vault.send(owner, "deposit", raw_assets, owner.address)
        event = self.vault.events(receipt, "Deposit")[0]
        hashes, gas = _fees(*receipts, receipt)
        return VaultMove(
            from_units(event["assets"], self.asset_scale),
            from_units(event["shares"], self.share_scale),
            hashes,
            gas,
        )

    async def redeem(self, owner: LocalAccount, shares: Decimal) -> VaultMove:
        raw_shares = to_units(shares, self.share_scale, field="shares")
        receipt = await self.vault.send(owner, "redeem", raw_shares, owner.address, owner.address)
        return self._withdrawn(receipt)

    async def withdraw(self, owner: LocalAccount, assets: Decimal) -> VaultMove:
        raw_assets = to_units(assets, self.asset_scale)
        receipt = await self.vault.send(owner, "withdraw", raw_assets, owner.address, owner.address)
        return self._withdrawn(receipt)

    def move_in(self, receipt: TxReceipt, event: str) -> VaultMove | None:
        """What a mined transaction did to this vault — its ``Deposit`` or ``Withdraw`` event
        as a move, with that transaction's gas — or None when it holds no such event (it was
        the approval sent before a deposit). For settling a send whose answer was lost."""
        found = self.vault.events(receipt, event)
        if not found:
            return None
        hashes, gas = _fees(receipt)
        return VaultMove(
            from_units(found[0]["assets"], self.asset_scale),
            from_units(found[0]["shares"], self.share_scale),
            hashes,
            gas,
        )

    def _withdrawn(self, receipt: TxReceipt) -> VaultMove:
        event = self.vault.events(receipt, "Withdraw")[0]
        hashes, gas = _fees(receipt)
        return VaultMove(
            from_units(event["assets"], self.asset_scale),
            from_units(event["shares"], self.share_scale),
            hashes,
            gas,
        )


class UniswapV2Swap:
    """Exact-input swaps through a Uniswap v2 router (``providers.defi.SwapProtocol``).

    ``tokens`` maps asset codes to (ERC-20 address, scale); ether trades as WETH.
    """

    def __init__(self, chain: Web3Chain, router: str, tokens: dict[str, tuple[str, int]]) -> None:
        self.chain = chain
        self.router = Contract(chain, router, load("UniswapV2Router02").abi)
        self.tokens = tokens
        self._erc20_abi = load("TestUSDC").abi

    def _token(self, asset: str) -> tuple[str, int]:
        if asset not in self.tokens:
            raise ValueError(f"no token configured for {asset}")
        return self.tokens[asset]

    async def quote(
        self, asset_in: str, asset_out: str, amount_in: Decimal, *, slippage_bps: int
    ) -> SwapQuote:
        address_in, scale_in = self._token(asset_in)
        address_out, scale_out = self._token(asset_out)
        raw_in = to_units(amount_in, scale_in)
        amounts = await self.router.read("getAmountsOut", raw_in, [address_in, address_out])
        raw_out = int(amounts[-1])
        return SwapQuote(
            asset_in,
            asset_out,
            amount_in,
            from_units(raw_out, scale_out),
            from_units(minimum_after_slippage(raw_out, slippage_bps), scale_out),
            slippage_bps,
        )

    def _swap_call(self, owner: str, quote: SwapQuote, deadline: int) -> tuple[Contract, int, str]:
        address_in, scale_in = self._token(quote.asset_in)
        address_out, scale_out = self._token(quote.asset_out)
        raw_in = to_units(quote.amount_in, scale_in)
        minimum = int(quote.minimum_out.scaleb(scale_out))
        data = self.router.encode(
            "swapExactTokensForTokens", raw_in, minimum, [address_in, address_out], owner, deadline
        )
        return Contract(self.chain, address_in, self._erc20_abi), raw_in, data

    async def estimate_gas(self, owner: str, quote: SwapQuote, *, deadline: int) -> GasQuote:
        token_in, raw_in, data = self._swap_call(owner, quote, deadline)
        return await _gas_after_approval(
            self.chain,
            token_in,
            owner,
            self.router.address,
            raw_in,
            to=self.router.address,
            data=data,
            extra_gas=UNISWAP_ORACLE_UPDATE_GAS,
        )

    async def swap(self, owner: LocalAccount, quote: SwapQuote, *, deadline: int) -> SwapResult:
        token_in, raw_in, data = self._swap_call(owner.address, quote, deadline)
        receipts = await _approve_if_short(token_in, owner, self.router.address, raw_in)
        receipt = await self.chain.send(
            owner, to=self.router.address, data=data, extra_gas=UNISWAP_ORACLE_UPDATE_GAS
        )
        address_out, scale_out = self._token(quote.asset_out)
        token_out = Contract(self.chain, address_out, self._erc20_abi)
        raw_out = sum(
            int(t["value"])
            for t in token_out.events(receipt, "Transfer")
            if t["to"].lower() == owner.address.lower()
        )
        hashes, gas = _fees(*receipts, receipt)
        return SwapResult(quote.amount_in, from_units(raw_out, scale_out), hashes, gas)
