"""Prices in USD, now or at any past instant, from the configured price feed.

"Now" is served from a short in-process cache (``CACHE_SECONDS``): every request within that
time sees the same snapshot, with the instant it was taken as its ``as_of``. A past instant
goes to the feed (the sandbox computes it; a real feed would answer from its history).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from diboas.providers.market import PriceFeed, PriceUnavailableError, SandboxPriceFeed

CACHE_SECONDS = 5.0

# The key under which an app's services carry a PriceFeed to use instead of the sandbox,
# and the key its PriceService is kept under once built.
FEED_SERVICE = "price_feed"
PRICES_SERVICE = "prices"


@dataclass(frozen=True, slots=True)
class Price:
    """An asset's price in USD at an instant."""

    asset: str
    price_usd: Decimal
    as_of: datetime


@dataclass(frozen=True, slots=True)
class _Snapshot:
    taken: float
    as_of: datetime
    prices: dict[str, Decimal]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PriceService:
    """Prices from a feed, with the cache for "now".

    Two requests that miss the cache at the same moment both ask the feed; the later answer
    wins. That is harmless (the snapshots differ by milliseconds) and keeps the hot path free
    of locks.
    """

    def __init__(
        self,
        feed: PriceFeed,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.feed = feed
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._snapshot: _Snapshot | None = None

    def assets(self) -> tuple[str, ...]:
        """Every asset the feed prices."""
        return self.feed.assets()

    async def prices(self, at: datetime | None = None) -> list[Price]:
        """Every asset's price at ``at`` (now, from the cache, when None)."""
        as_of, values = await self._values(self.assets(), at)
        return [Price(asset, values[asset], as_of) for asset in sorted(values)]

    async def price_usd(self, asset: str, at: datetime | None = None) -> Price:
        """One asset's price at ``at`` (now, from the cache, when None)."""
        as_of, values = await self._values([asset], at)
        return Price(asset, values[asset], as_of)

    async def prices_for(
        self, assets: Iterable[str], at: datetime | None = None
    ) -> tuple[datetime, dict[str, Decimal]]:
        """The prices of some assets at ``at`` (now when None) and the instant they are for."""
        return await self._values(sorted(set(assets)), at)

    async def _values(
        self, assets: Iterable[str], at: datetime | None
    ) -> tuple[datetime, dict[str, Decimal]]:
        wanted = list(assets)
        if at is not None:
            at = at.astimezone(UTC)
            return at, await self.feed.prices_usd(wanted, at)
        snapshot = await self._now()
        missing = [asset for asset in wanted if asset not in snapshot.prices]
        if missing:
            raise PriceUnavailableError(
                f"no price for {', '.join(missing)}",
                details={"assets": missing, "feed": self.feed.name},
            )
        return snapshot.as_of, {asset: snapshot.prices[asset] for asset in wanted}

    async def _now(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot.taken < self.cache_seconds:
            return snapshot
        as_of = self._clock()
        values = await self.feed.prices_usd(self.assets(), as_of)
        snapshot = _Snapshot(time.monotonic(), as_of, values)
        self._snapshot = snapshot
        return snapshot


_default = PriceService(SandboxPriceFeed())


def default_service() -> PriceService:
    """The process-wide service on the sandbox feed."""
    return _default


def service_for(services: dict[str, Any]) -> PriceService:
    """The PriceService of an app: on the feed it was handed, else the process-wide sandbox."""
    existing = services.get(PRICES_SERVICE)
    if isinstance(existing, PriceService):
        return existing
    feed = services.get(FEED_SERVICE)
    service = _default if feed is None else PriceService(feed)
    services[PRICES_SERVICE] = service
    return service


async def price_usd(asset: str, at: datetime | None = None) -> Price:
    """An asset's USD price at ``at`` (now when None) from the process-wide service."""
    return await _default.price_usd(asset, at)


async def prices(at: datetime | None = None) -> list[Price]:
    """Every asset's USD price at ``at`` (now when None) from the process-wide service."""
    return await _default.prices(at)


__all__ = [
    "CACHE_SECONDS",
    "Price",
    "PriceService",
    "PriceUnavailableError",
    "default_service",
    "price_usd",
    "prices",
    "service_for",
]
