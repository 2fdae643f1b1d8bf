"""Market data from the exchanges behind the ``PriceFeed`` interface.

"Now" is the mid of the best bid and ask of the first healthy venue (``Failover`` over the
venues: retries, breaker, failover), so ``market.prices.PriceService`` caches it briefly
like any feed. USD and USD-pegged stablecoins are 1. A past instant is answered by the
``history`` feed when one is given; the venues' tickers know only the present, so without
one a past instant is refused (``price_unavailable``) rather than answered with today's
price.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from diboas.providers.exchange import USD_CENT, Exchange, Ticker
from diboas.providers.market import PriceFeed, PriceUnavailableError
from diboas.providers.resilience import Failover, ProviderError

PEGGED = {"USD": Decimal(1), "USDC": Decimal(1)}
# How far from the present an instant still counts as "now" for a live ticker.
PRESENT = timedelta(seconds=30)


class ExchangePriceFeed:
    """USD prices from exchange tickers (mid), with an optional feed for past instants."""

    name = "exchanges"

    def __init__(self, venues: Failover[Exchange], *, history: PriceFeed | None = None) -> None:
        self.venues = venues
        self.history = history

    def assets(self) -> tuple[str, ...]:
        traded: set[str] = set()
        for slot in self.venues.slots:
            traded.update(slot.implementation.assets())
        return tuple(sorted(traded | set(PEGGED)))

    async def prices_usd(self, assets: Sequence[str], at: datetime) -> dict[str, Decimal]:
        timed = await self.timed_prices_usd(assets, at)
        return {asset: price for asset, (price, _) in timed.items()}

    async def timed_prices_usd(
        self, assets: Iterable[str], at: datetime
    ) -> dict[str, tuple[Decimal, datetime]]:
        """Each asset's price with the instant the venue's ticker was taken (``at`` for a
        pegged asset or a past instant)."""
        if at.tzinfo is None:
            raise ValueError("a price needs a time-zone-aware instant")
        wanted = list(assets)
        if abs(datetime.now(UTC) - at) > PRESENT:
            if self.history is None:
                raise PriceUnavailableError(
                    "the exchanges have no price history", details={"feed": self.name}
                )
            past = await self.history.prices_usd(wanted, at)
            return {asset: (price, at) for asset, price in past.items()}
        found: dict[str, tuple[Decimal, datetime]] = {}
        for asset in wanted:
            if asset in PEGGED:
                found[asset] = (PEGGED[asset], at)
                continue
            # Only the venues that trade the asset are asked (one listing fewer markets than
            # another must not fail the whole snapshot).
            trading = [s for s in self.venues.slots if asset in s.implementation.assets()]
            if not trading:
                raise PriceUnavailableError(f"no price for {asset}", details={"asset": asset})
            venues = Failover(trading, policy=self.venues.policy)
            try:
                _, ticker = await venues.run(functools.partial(_ticker, asset=asset))
            except ProviderError as exc:
                raise PriceUnavailableError(
                    f"no exchange could price {asset}",
                    details={"asset": asset, "error": exc.code},
                ) from exc
            found[asset] = (ticker.mid.quantize(USD_CENT, rounding=ROUND_HALF_EVEN), ticker.at)
        return found


async def _ticker(venue: Exchange, *, asset: str) -> Ticker:
    return await venue.ticker(asset)
