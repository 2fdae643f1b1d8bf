"""Prices in USD, now or at any past instant, from the configured price feed.

"Now" is served from a short in-process cache (``CACHE_SECONDS``): every request within that
time sees the same snapshot, with the instant it was taken as its ``as_of``. A past instant
goes to the feed (the sandbox computes it; a real feed would answer from its history).

One source of truth: an app's service (``service_for``) reads the same exchange venues the
quotes are priced on (``ExchangePriceFeed``: the first healthy venue's mid; the deterministic
sandbox venues by default), so a balance, a portfolio and a quote never disagree about a price.

Staleness: a feed that dates its prices (the exchanges' tickers) gives each price the instant
it was observed (``priced_at``). When the feed stops answering, the last snapshot is served
again rather than nothing, and a price older than ``max_age`` is flagged ``stale`` — values
computed from it say so instead of pretending to be current. Quotes never use these prices
(they walk the venues' books, with their own age check in ``exchange_routing``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import structlog

from diboas.providers.exchange import SandboxExchange
from diboas.providers.exchange_feed import ExchangePriceFeed
from diboas.providers.exchange_routing import venues_for
from diboas.providers.market import PriceFeed, PriceUnavailableError, SandboxPriceFeed
from diboas.settings import Settings, get_settings

log = structlog.get_logger(__name__)

CACHE_SECONDS = 5.0

# The key under which an app's services carry a PriceFeed to use instead of the sandbox,
# and the key its PriceService is kept under once built.
FEED_SERVICE = "price_feed"
PRICES_SERVICE = "prices"


@runtime_checkable
class TimedPriceFeed(Protocol):
    """A feed that also says when it observed each price (an exchange ticker's time)."""

    async def timed_prices_usd(
        self, assets: Iterable[str], at: datetime
    ) -> dict[str, tuple[Decimal, datetime]]: ...


@dataclass(frozen=True, slots=True)
class Price:
    """An asset's price in USD at an instant; ``priced_at`` is when the feed observed it and
    ``stale`` whether that is older than the service's allowed age."""

    asset: str
    price_usd: Decimal
    as_of: datetime
    priced_at: datetime | None = None
    stale: bool = False


@dataclass(frozen=True, slots=True)
class Valuation:
    """Prices to value a balance with: the instant, each price, when each was observed, and
    which of them are stale."""

    as_of: datetime
    prices: dict[str, Decimal]
    priced_at: dict[str, datetime] = field(default_factory=dict)
    stale: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Snapshot:
    taken: float
    as_of: datetime
    prices: dict[str, Decimal]
    priced_at: dict[str, datetime]


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
        max_age: timedelta | None = None,
    ) -> None:
        self.feed = feed
        self.cache_seconds = cache_seconds
        self.max_age = max_age
        self._clock = clock
        self._snapshot: _Snapshot | None = None

    def assets(self) -> tuple[str, ...]:
        """Every asset the feed prices."""
        return self.feed.assets()

    async def prices(self, at: datetime | None = None) -> list[Price]:
        """Every asset's price at ``at`` (now, from the cache, when None)."""
        found = await self.valuation(self.assets(), at)
        return [self._price(found, asset) for asset in sorted(found.prices)]

    async def price_usd(self, asset: str, at: datetime | None = None) -> Price:
        """One asset's price at ``at`` (now, from the cache, when None)."""
        return self._price(await self.valuation([asset], at), asset)

    async def prices_for(
        self, assets: Iterable[str], at: datetime | None = None
    ) -> tuple[datetime, dict[str, Decimal]]:
        """The prices of some assets at ``at`` (now when None) and the instant they are for."""
        found = await self.valuation(assets, at)
        return found.as_of, found.prices

    async def valuation(self, assets: Iterable[str], at: datetime | None = None) -> Valuation:
        """The prices of some assets at ``at`` (now when None), each with when it was
        observed and whether it is stale (only "now" can be: a past instant is priced for
        that instant)."""
        wanted = sorted(set(assets))
        if at is not None:
            at = at.astimezone(UTC)
            # An instant asked for explicitly is priced from the feed's history when it has
            # one (the exchanges' feed does), so the same as_of is valued the same now and
            # later; a live ticker would answer an instant of the last few seconds instead.
            source: PriceFeed = getattr(self.feed, "history", None) or self.feed
            values = await source.prices_usd(wanted, at)
            return Valuation(at, values, dict.fromkeys(values, at))
        snapshot = await self._now()
        missing = [asset for asset in wanted if asset not in snapshot.prices]
        if missing:
            raise PriceUnavailableError(
                f"no price for {', '.join(missing)}",
                details={"assets": missing, "feed": self.feed.name},
            )
        now = self._clock()
        priced_at = {asset: snapshot.priced_at[asset] for asset in wanted}
        stale = frozenset(
            asset
            for asset, observed in priced_at.items()
            if self.max_age is not None and now - observed > self.max_age
        )
        values = {asset: snapshot.prices[asset] for asset in wanted}
        return Valuation(snapshot.as_of, values, priced_at, stale)

    @staticmethod
    def _price(found: Valuation, asset: str) -> Price:
        return Price(
            asset,
            found.prices[asset],
            found.as_of,
            found.priced_at.get(asset),
            asset in found.stale,
        )

    async def _now(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot.taken < self.cache_seconds:
            return snapshot
        as_of = self._clock()
        try:
            if isinstance(self.feed, TimedPriceFeed):
                timed = await self.feed.timed_prices_usd(self.assets(), as_of)
                values = {asset: price for asset, (price, _) in timed.items()}
                priced_at = {asset: observed for asset, (_, observed) in timed.items()}
            else:
                values = await self.feed.prices_usd(self.assets(), as_of)
                priced_at = dict.fromkeys(values, as_of)
        except PriceUnavailableError:
            if snapshot is None:
                raise
            # The feed stopped answering: the last prices, still dated when they were seen
            # (so they turn stale), rather than no balance at all. Asked again next time.
            log.warning("price feed unavailable; serving the last prices", feed=self.feed.name)
            return snapshot
        snapshot = _Snapshot(time.monotonic(), as_of, values, priced_at)
        self._snapshot = snapshot
        return snapshot


_default = PriceService(SandboxPriceFeed())


def default_service() -> PriceService:
    """The process-wide service on the sandbox feed."""
    return _default


def exchange_feed(services: dict[str, Any], settings: Settings) -> ExchangePriceFeed:
    """The app's venues as a price feed. Past instants come from the sandbox feed when every
    venue is a sandbox venue (their books are built around it, so it is their history);
    real venues have no history here, so a past instant is refused for them."""
    venues = venues_for(services, settings)
    sandboxes = [
        s.implementation for s in venues.slots if isinstance(s.implementation, SandboxExchange)
    ]
    history = sandboxes[0].feed if len(sandboxes) == len(venues.slots) else None
    return ExchangePriceFeed(venues, history=history)


def service_for(services: dict[str, Any], settings: Settings | None = None) -> PriceService:
    """The PriceService of an app (built once): on the feed it was handed, else on the app's
    exchange venues — the same market data the quotes use."""
    existing = services.get(PRICES_SERVICE)
    if isinstance(existing, PriceService):
        return existing
    settings = settings or get_settings()
    feed = services.get(FEED_SERVICE) or exchange_feed(services, settings)
    service = PriceService(feed, max_age=timedelta(seconds=settings.market_max_price_age_seconds))
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
    "Valuation",
    "default_service",
    "exchange_feed",
    "price_usd",
    "prices",
    "service_for",
]
