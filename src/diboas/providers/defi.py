"""DeFi protocols: the interfaces for yield vaults (ERC-4626) and token swaps (Uniswap v2
style), and a deterministic sandbox that implements both — the default while no chain is
configured (``DIBOAS_CHAIN_RPC_URL`` empty). The on-chain adapters are in
``providers.defi_onchain``. The owner is the custodial key acting (``chain.wallets``); the
sandbox only uses its address.

Amounts are Decimals in the asset's own scale (USDC 6, ETH 18); vault shares have the vault's
decimals. Every implementation fails the same way (the conformance suite checks it): what
the contract would refuse raises ``ChainRevertedError`` (``chain_tx_reverted``) naming the
contract's error — ``ExceededMaxRedeem`` / ``ExceededMaxWithdraw`` for more than the owner
holds, ``UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT`` when a swap would pay less than its
slippage bound, ``UniswapV2Router: EXPIRED`` past its deadline; an amount that is not a
positive decimal within the asset's scale raises ``InvalidAmountError`` before anything runs.

The sandbox follows the vault contract's arithmetic exactly (one virtual share and one
virtual asset, rounding in the vault's favour) and Uniswap v2's constant-product formula with
its 0.3 % fee, so its answers are the real protocol's answers for the same state. Its vault
earns yield deterministically: ``apy`` simple interest on the assets per elapsed second of an
injectable clock, plus whatever ``donate`` adds; with ``state_path`` it keeps its state in a
JSON file (the platform's under ``DIBOAS_DATA_DIR/sandbox``), so positions survive a
restart. Gas is a fixed, documented figure per operation (``SANDBOX_GAS``) at
``SANDBOX_GAS_PRICE``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Literal, Protocol

from eth_account.signers.local import LocalAccount

from diboas.kit.money import parse_amount
from diboas.providers.chain import ChainRevertedError, GasQuote

SECONDS_PER_YEAR = 365 * 24 * 3600
SANDBOX_GAS_PRICE = 2 * 10**9  # 2 gwei
SANDBOX_GAS = {"approve": 46_000, "deposit": 75_000, "redeem": 60_000, "swap": 110_000}
UNISWAP_FEE_BPS = 30  # 0.3 %, taken from the input


@dataclass(frozen=True, slots=True)
class VaultMove:
    """What a deposit, redeem or withdrawal did: assets and shares moved, the transactions
    that did it and the gas they cost (wei)."""

    assets: Decimal
    shares: Decimal
    tx_hashes: tuple[str, ...]
    gas_fee_wei: int


VaultOperation = Literal["deposit", "redeem", "withdraw"]


class VaultProtocol(Protocol):
    """An ERC-4626 vault over one asset. ``estimate_gas`` prices an operation before it runs
    (every transaction it would send, approval included): its ``max_cost_wei`` bounds what the
    operation's ``gas_fee_wei`` will be, and what it would refuse it refuses already."""

    name: str
    asset: str
    asset_scale: int
    share_scale: int

    async def total_assets(self) -> Decimal: ...
    async def total_shares(self) -> Decimal: ...
    async def share_price(self) -> Decimal: ...
    async def shares_of(self, owner: str) -> Decimal: ...
    async def preview_deposit(self, assets: Decimal) -> Decimal: ...
    async def preview_redeem(self, shares: Decimal) -> Decimal: ...
    async def preview_withdraw(self, assets: Decimal) -> Decimal: ...
    async def estimate_gas(
        self, owner: str, operation: VaultOperation, amount: Decimal
    ) -> GasQuote: ...
    async def deposit(self, owner: LocalAccount, assets: Decimal) -> VaultMove: ...
    async def redeem(self, owner: LocalAccount, shares: Decimal) -> VaultMove: ...
    async def withdraw(self, owner: LocalAccount, assets: Decimal) -> VaultMove: ...


@dataclass(frozen=True, slots=True)
class SwapQuote:
    """What ``amount_in`` of ``asset_in`` buys now, and the least the swap may pay out."""

    asset_in: str
    asset_out: str
    amount_in: Decimal
    amount_out: Decimal
    minimum_out: Decimal
    slippage_bps: int


@dataclass(frozen=True, slots=True)
class SwapResult:
    """A swap as executed."""

    amount_in: Decimal
    amount_out: Decimal
    tx_hashes: tuple[str, ...]
    gas_fee_wei: int


class SwapProtocol(Protocol):
    """A token swap venue (Uniswap v2 style: exact input, bounded output, deadline)."""

    async def quote(
        self, asset_in: str, asset_out: str, amount_in: Decimal, *, slippage_bps: int
    ) -> SwapQuote: ...
    async def estimate_gas(self, owner: str, quote: SwapQuote, *, deadline: int) -> GasQuote: ...
    async def swap(self, owner: LocalAccount, quote: SwapQuote, *, deadline: int) -> SwapResult: ...


def to_units(amount: Decimal, scale: int, *, field: str = "amount") -> int:
    """A positive amount (at most ``scale`` decimals) in the asset's smallest unit."""
    return int(parse_amount(amount, scale, field=field).scaleb(scale))


def from_units(raw: int, scale: int) -> Decimal:
    return Decimal(raw).scaleb(-scale)


def minimum_after_slippage(raw_out: int, slippage_bps: int) -> int:
    if not 0 <= slippage_bps < 10_000:
        raise ValueError("slippage is in basis points, from 0 to 9999")
    return raw_out * (10_000 - slippage_bps) // 10_000


def uniswap_amount_out(raw_in: int, reserve_in: int, reserve_out: int) -> int:
    """UniswapV2Library.getAmountOut: the constant-product output after the 0.3 % fee."""
    with_fee = raw_in * (10_000 - UNISWAP_FEE_BPS)
    return with_fee * reserve_out // (reserve_in * 10_000 + with_fee)


def _sandbox_gas(*steps: str) -> GasQuote:
    return GasQuote(sum(SANDBOX_GAS[s] for s in steps), SANDBOX_GAS_PRICE, 0)


def _mul_div(x: int, y: int, d: int, *, round_up: bool) -> int:
    q, r = divmod(x * y, d)
    return q + 1 if round_up and r else q


@dataclass
class SandboxVault:
    """A deterministic ERC-4626 vault held in memory (see the module docstring)."""

    name: str = "diBoaS USDC Vault (sandbox)"
    asset: str = "USDC"
    asset_scale: int = 6
    share_scale: int = 6
    apy: Decimal = Decimal(0)
    clock: Callable[[], float] = time.time
    _assets: int = 0
    _supply: int = 0
    _shares: dict[str, int] = field(default_factory=dict)
    # Where the vault keeps its state between runs (like the payments sandbox); None: memory.
    state_path: Path | None = None
    _accrued_at: float | None = None
    _loaded: bool = False
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self.state_path is not None and self.state_path.is_file():
            state = json.loads(self.state_path.read_text())
            self._assets, self._supply = int(state["assets"]), int(state["supply"])
            self._shares = {k: int(v) for k, v in state["shares"].items()}
            self._accrued_at = state["accrued_at"]

    def _save(self) -> None:
        if self.state_path is None:
            return
        state = {
            "assets": str(self._assets),
            "supply": str(self._supply),
            "shares": {k: str(v) for k, v in self._shares.items()},
            "accrued_at": self._accrued_at,
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.state_path.with_suffix(".partial")
        partial.write_text(json.dumps(state))
        partial.replace(self.state_path)  # atomic: a crash leaves the old state or the new

    def _accrue(self) -> None:
        self._load()
        now = self.clock()
        if self._accrued_at is not None and now > self._accrued_at and self._assets:
            interest = Decimal(self._assets) * self.apy * Decimal(now - self._accrued_at)
            self._assets += int((interest / SECONDS_PER_YEAR).to_integral_value(ROUND_DOWN))
        self._accrued_at = now

    def _to_shares(self, raw_assets: int, *, round_up: bool) -> int:
        self._accrue()
        return _mul_div(raw_assets, self._supply + 1, self._assets + 1, round_up=round_up)

    def _to_assets(self, raw_shares: int, *, round_up: bool) -> int:
        self._accrue()
        return _mul_div(raw_shares, self._assets + 1, self._supply + 1, round_up=round_up)

    def donate(self, assets: Decimal) -> None:
        """Yield arriving in the vault (a harvest): every share is worth more at once."""
        self._accrue()
        self._assets += to_units(assets, self.asset_scale)
        self._save()

    async def total_assets(self) -> Decimal:
        self._accrue()
        return from_units(self._assets, self.asset_scale)

    async def total_shares(self) -> Decimal:
        self._load()
        return from_units(self._supply, self.share_scale)

    async def share_price(self) -> Decimal:
        one_share = 10**self.share_scale
        return from_units(self._to_assets(one_share, round_up=False), self.asset_scale)

    async def shares_of(self, owner: str) -> Decimal:
        self._load()
        return from_units(self._shares.get(owner.lower(), 0), self.share_scale)

    async def preview_deposit(self, assets: Decimal) -> Decimal:
        raw = self._to_shares(to_units(assets, self.asset_scale), round_up=False)
        return from_units(raw, self.share_scale)

    async def preview_redeem(self, shares: Decimal) -> Decimal:
        raw = self._to_assets(to_units(shares, self.share_scale, field="shares"), round_up=False)
        return from_units(raw, self.asset_scale)

    async def preview_withdraw(self, assets: Decimal) -> Decimal:
        raw = self._to_shares(to_units(assets, self.asset_scale), round_up=True)
        return from_units(raw, self.share_scale)

    async def estimate_gas(
        self, owner: str, operation: VaultOperation, amount: Decimal
    ) -> GasQuote:
        if operation == "deposit":
            if self._to_shares(to_units(amount, self.asset_scale), round_up=False) == 0:
                raise ChainRevertedError("ZeroShares()", error_name="ZeroShares")
            return _sandbox_gas("approve", "deposit")
        if operation == "redeem":
            self._check_redeem(owner, to_units(amount, self.share_scale, field="shares"))
        else:
            self._check_withdraw(owner, to_units(amount, self.asset_scale))
        return _sandbox_gas("redeem")

    def _check_redeem(self, owner: str, raw_shares: int) -> None:
        held = self._shares.get(owner.lower(), 0)
        if raw_shares > held:
            raise ChainRevertedError(
                f"ExceededMaxRedeem({owner}, {raw_shares}, {held})",
                error_name="ExceededMaxRedeem",
                args=(owner, raw_shares, held),
            )

    def _check_withdraw(self, owner: str, raw_assets: int) -> None:
        most = self._to_assets(self._shares.get(owner.lower(), 0), round_up=False)
        if raw_assets > most:
            raise ChainRevertedError(
                f"ExceededMaxWithdraw({owner}, {raw_assets}, {most})",
                error_name="ExceededMaxWithdraw",
                args=(owner, raw_assets, most),
            )

    async def deposit(self, owner: LocalAccount, assets: Decimal) -> VaultMove:
        raw_assets = to_units(assets, self.asset_scale)
        async with self._lock:
            raw_shares = self._to_shares(raw_assets, round_up=False)
            if raw_shares == 0:
                raise ChainRevertedError("ZeroShares()", error_name="ZeroShares")
            self._enter(owner.address, raw_assets, raw_shares)
        gas = _sandbox_gas("approve", "deposit").max_cost_wei
        return VaultMove(assets, from_units(raw_shares, self.share_scale), (), gas)

    async def redeem(self, owner: LocalAccount, shares: Decimal) -> VaultMove:
        raw_shares = to_units(shares, self.share_scale, field="shares")
        async with self._lock:
            self._check_redeem(owner.address, raw_shares)
            raw_assets = self._to_assets(raw_shares, round_up=False)
            self._exit(owner.address, raw_assets, raw_shares)
        return self._exited(raw_assets, raw_shares)

    async def withdraw(self, owner: LocalAccount, assets: Decimal) -> VaultMove:
        raw_assets = to_units(assets, self.asset_scale)
        async with self._lock:
            self._check_withdraw(owner.address, raw_assets)
            raw_shares = self._to_shares(raw_assets, round_up=True)
            self._exit(owner.address, raw_assets, raw_shares)
        return self._exited(raw_assets, raw_shares)

    def _enter(self, owner: str, raw_assets: int, raw_shares: int) -> None:
        self._assets += raw_assets
        self._supply += raw_shares
        self._shares[owner.lower()] = self._shares.get(owner.lower(), 0) + raw_shares
        self._save()

    def _exit(self, owner: str, raw_assets: int, raw_shares: int) -> None:
        self._assets -= raw_assets
        self._supply -= raw_shares
        self._shares[owner.lower()] -= raw_shares
        self._save()

    def _exited(self, raw_assets: int, raw_shares: int) -> VaultMove:
        return VaultMove(
            from_units(raw_assets, self.asset_scale),
            from_units(raw_shares, self.share_scale),
            (),
            _sandbox_gas("redeem").max_cost_wei,
        )


@dataclass
class SandboxSwap:
    """A deterministic constant-product pool per asset pair (Uniswap v2's formula and fee).

    ``reserves`` maps (asset, asset) to their raw reserves; ``scales`` gives each asset's scale.
    """

    reserves: dict[tuple[str, str], tuple[int, int]]
    scales: dict[str, int]
    clock: Callable[[], float] = time.time
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _pool(self, asset_in: str, asset_out: str) -> tuple[int, int]:
        if (asset_in, asset_out) in self.reserves:
            return self.reserves[(asset_in, asset_out)]
        if (asset_out, asset_in) in self.reserves:
            reserve_out, reserve_in = self.reserves[(asset_out, asset_in)]
            return reserve_in, reserve_out
        raise ChainRevertedError("UniswapV2Library: no pair", error_name="Error", args=("no pair",))

    def _set_pool(self, asset_in: str, asset_out: str, reserve_in: int, reserve_out: int) -> None:
        if (asset_in, asset_out) in self.reserves:
            self.reserves[(asset_in, asset_out)] = (reserve_in, reserve_out)
        else:
            self.reserves[(asset_out, asset_in)] = (reserve_out, reserve_in)

    async def quote(
        self, asset_in: str, asset_out: str, amount_in: Decimal, *, slippage_bps: int
    ) -> SwapQuote:
        raw_in = to_units(amount_in, self.scales[asset_in])
        raw_out = uniswap_amount_out(raw_in, *self._pool(asset_in, asset_out))
        scale_out = self.scales[asset_out]
        return SwapQuote(
            asset_in,
            asset_out,
            amount_in,
            from_units(raw_out, scale_out),
            from_units(minimum_after_slippage(raw_out, slippage_bps), scale_out),
            slippage_bps,
        )

    async def estimate_gas(self, owner: str, quote: SwapQuote, *, deadline: int) -> GasQuote:
        self._check_swap(quote, deadline)
        return _sandbox_gas("approve", "swap")

    def _check_swap(self, quote: SwapQuote, deadline: int) -> tuple[int, int, int, int]:
        """(raw in, raw out, reserve in, reserve out), or the router's refusal."""
        if self.clock() > deadline:
            raise ChainRevertedError(
                "UniswapV2Router: EXPIRED", error_name="Error", args=("UniswapV2Router: EXPIRED",)
            )
        raw_in = to_units(quote.amount_in, self.scales[quote.asset_in])
        minimum = int(quote.minimum_out.scaleb(self.scales[quote.asset_out]))
        reserve_in, reserve_out = self._pool(quote.asset_in, quote.asset_out)
        raw_out = uniswap_amount_out(raw_in, reserve_in, reserve_out)
        if raw_out < minimum:
            reason = "UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT"
            raise ChainRevertedError(reason, error_name="Error", args=(reason,))
        return raw_in, raw_out, reserve_in, reserve_out

    async def swap(self, owner: LocalAccount, quote: SwapQuote, *, deadline: int) -> SwapResult:
        async with self._lock:
            raw_in, raw_out, reserve_in, reserve_out = self._check_swap(quote, deadline)
            self._set_pool(
                quote.asset_in, quote.asset_out, reserve_in + raw_in, reserve_out - raw_out
            )
        gas = _sandbox_gas("approve", "swap").max_cost_wei
        return SwapResult(
            quote.amount_in, from_units(raw_out, self.scales[quote.asset_out]), (), gas
        )
