"""Market prices: the price-feed interface and its deterministic sandbox.

A feed answers "what was this asset worth in USD at instant T". The sandbox (the default)
computes prices from T alone, so the price of any past instant is reproducible: the same
instant always gives the same price, on every machine. The real adapter (an exchange through
ccxt) comes with the providers issue and implements the same interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Protocol

from diboas.kit.errors import DomainError


class PriceUnavailableError(DomainError):
    """The feed has no price for an asset (at that instant)."""

    status_code = 503
    code = "price_unavailable"


class PriceFeed(Protocol):
    """Prices in USD by asset code; raises PriceUnavailableError for what it cannot price."""

    name: str

    def assets(self) -> tuple[str, ...]:
        """The asset codes this feed prices."""
        ...

    async def prices_usd(self, assets: Sequence[str], at: datetime) -> dict[str, Decimal]:
        """The USD price of each asset at the instant ``at`` (time-zone aware)."""
        ...


# --- the sandbox ----------------------------------------------------------------------------

_CENT = Decimal("0.01")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_PI = Decimal("3.141592653589793238462643383279502884")
# Enough digits that the cents of a price never depend on the last digit of the sine.
_PRECISION = 34
_SERIES_TERMS = 40


def _sin(x: Decimal) -> Decimal:
    """sin(x) for -π <= x <= π by its Taylor series, in Decimal arithmetic.

    math.sin is not guaranteed to give the same last bit on every platform; a price that sits
    on a half cent must round the same way everywhere, so the series is summed in Decimal.
    """
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        x_squared = x * x
        term = x
        total = x
        for n in range(1, _SERIES_TERMS):
            term = -term * x_squared / ((2 * n) * (2 * n + 1))
            if term == 0 or abs(term) < Decimal("1e-32"):
                break
            total += term
        return +total


@dataclass(frozen=True, slots=True)
class Wave:
    """One periodic component of a sandbox price: ``amplitude`` × sin(2π (t + shift) / period)."""

    period: timedelta
    amplitude: Decimal
    shift: timedelta = timedelta(0)

    def at(self, micros: int) -> Decimal:
        period = self.period // _MICROSECOND
        phase = (micros + self.shift // _MICROSECOND) % period
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            # sin(2πp - π) = -sin(2πp), with the argument kept inside [-π, π).
            angle = 2 * _PI * Decimal(phase) / Decimal(period) - _PI
            return -self.amplitude * _sin(angle)


@dataclass(frozen=True, slots=True)
class SandboxAsset:
    """How the sandbox prices one asset: a base price moved by bounded waves."""

    base: Decimal
    waves: tuple[Wave, ...] = ()

    def price(self, at: datetime) -> Decimal:
        if not self.waves:
            return self.base.quantize(_CENT)
        micros = (at - _EPOCH) // _MICROSECOND
        factor = 1 + sum((wave.at(micros) for wave in self.waves), Decimal(0))
        with localcontext() as ctx:
            ctx.prec = _PRECISION
            return (self.base * factor).quantize(_CENT, rounding=ROUND_HALF_EVEN)

    def bounds(self) -> tuple[Decimal, Decimal]:
        """The lowest and highest price this asset can ever have in the sandbox."""
        swing = sum((wave.amplitude for wave in self.waves), Decimal(0))
        low = (self.base * (1 - swing)).quantize(_CENT, rounding=ROUND_HALF_EVEN)
        high = (self.base * (1 + swing)).quantize(_CENT, rounding=ROUND_HALF_EVEN)
        return low, high


_DAY = timedelta(days=1)
_HOUR = timedelta(hours=1)

SANDBOX_ASSETS: Mapping[str, SandboxAsset] = {
    "USD": SandboxAsset(Decimal(1)),
    "USDC": SandboxAsset(Decimal(1)),
    # Shifted so that the two coins do not rise and fall in step.
    "BTC": SandboxAsset(
        Decimal("65000.00"),
        (Wave(_DAY, Decimal("0.03")), Wave(_HOUR, Decimal("0.005"), timedelta(minutes=7))),
    ),
    "ETH": SandboxAsset(
        Decimal("3200.00"),
        (
            Wave(_DAY, Decimal("0.04"), timedelta(hours=5)),
            Wave(_HOUR, Decimal("0.008"), timedelta(minutes=23)),
        ),
    ),
    "EUR": SandboxAsset(Decimal("1.08"), (Wave(_DAY, Decimal("0.002"), timedelta(hours=11)),)),
}


class SandboxPriceFeed:
    """Deterministic prices: USD and USDC exactly 1; BTC, ETH and EUR a base price with a
    smooth daily and hourly swing (at most ±3.5 % for BTC, ±4.8 % for ETH), rounded to the
    cent half-even. Like a vendor's sandbox it refuses assets it does not list."""

    name = "sandbox"

    def __init__(self, assets: Mapping[str, SandboxAsset] = SANDBOX_ASSETS) -> None:
        self._assets = dict(assets)

    def assets(self) -> tuple[str, ...]:
        return tuple(sorted(self._assets))

    def bounds(self, asset: str) -> tuple[Decimal, Decimal]:
        """The range an asset's sandbox price stays in."""
        return self._model(asset).bounds()

    async def prices_usd(self, assets: Sequence[str], at: datetime) -> dict[str, Decimal]:
        if at.tzinfo is None:
            raise ValueError("a price needs a time-zone-aware instant")
        return {asset: self._model(asset).price(at) for asset in assets}

    def _model(self, asset: str) -> SandboxAsset:
        model = self._assets.get(asset)
        if model is None:
            raise PriceUnavailableError(
                f"no price for {asset}", details={"asset": asset, "feed": self.name}
            )
        return model
