"""The venues the platform trades on (from settings), and the cheapest healthy route.

A route's total cost for an order is, in USD: the venue's taker fee on the expected cost,
the spread (best price against the mid, times the quantity) and the slippage (the walk
through the book against the best price). Venues whose breaker is open or whose market data
call fails are skipped, and the reason for the choice names every candidate's cost.
Network fees (gas) are zero on a centralised venue; the field is kept so that on-chain
routes rank on the same scale. A venue whose book is older than ``max_age`` (the setting
``DIBOAS_MARKET_MAX_PRICE_AGE_SECONDS``) is skipped as stale: a quote is never priced from
old market data, and when every venue is stale the quote is refused (``market_data_stale``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_UP, Decimal
from typing import Any

from diboas.kit.errors import DomainError
from diboas.providers.exchange import (
    USD_CENT,
    Exchange,
    SandboxExchange,
    Side,
    walk_book,
)
from diboas.providers.exchange_ccxt import CcxtExchange
from diboas.providers.exchange_coinbase import CoinbaseExchange
from diboas.providers.exchange_sandbox_server import binance_urls
from diboas.providers.resilience import (
    PROVIDER_HEALTH,
    BreakerState,
    CircuitBreaker,
    Failover,
    ProviderError,
    ProviderSlot,
    RetryPolicy,
    call,
)
from diboas.settings import Settings

VENUES_SERVICE = "exchange_venues"
BOOK_DEPTH = 50
STALE = "stale market data"


class NoRouteError(DomainError):
    """No healthy venue can fill the order now (venues down or unreachable)."""

    status_code = 503
    code = "no_route"


class MarketDataStaleError(DomainError):
    """Every venue that answered gave market data older than the allowed age: no quote is
    made from it (nothing is held or stored)."""

    status_code = 503
    code = "market_data_stale"


class TooLargeForBooksError(DomainError):
    """Every healthy venue's order book is too thin for this order: a smaller one may pass."""

    status_code = 422
    code = "insufficient_liquidity"


@dataclass(frozen=True, slots=True)
class RouteCost:
    """What one venue would charge for an order, all in USD."""

    venue: str
    quantity: Decimal  # base quantity the venue would fill
    cost: Decimal  # quote cost at the venue (before its fee)
    best_price: Decimal
    average_price: Decimal
    fee: Decimal
    spread: Decimal
    slippage: Decimal
    network: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.fee + self.spread + self.slippage + self.network

    def as_dict(self) -> dict[str, str]:
        return {
            "venue": self.venue,
            "fee": str(self.fee),
            "spread": str(self.spread),
            "slippage": str(self.slippage),
            "network": str(self.network),
            "total": str(self.total),
            "average_price": str(self.average_price),
        }


@dataclass(frozen=True, slots=True)
class Route:
    """The chosen venue, every candidate's cost, and why."""

    chosen: RouteCost
    candidates: tuple[RouteCost, ...]
    skipped: dict[str, str]

    @property
    def reason(self) -> str:
        others = [c for c in self.candidates if c is not self.chosen]
        text = f"lowest total cost on {self.chosen.venue}: {_usd(self.chosen.total)} USD"
        text += f" (fee {_usd(self.chosen.fee)} + spread {_usd(self.chosen.spread)}"
        text += f" + slippage {_usd(self.chosen.slippage)})"
        if others:
            text += "; " + ", ".join(f"{c.venue} {_usd(c.total)} USD" for c in others)
        if self.skipped:
            text += "; skipped " + ", ".join(f"{v} ({why})" for v, why in self.skipped.items())
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "provider": self.chosen.venue,
            "reason": self.reason,
            "candidates": [c.as_dict() for c in self.candidates],
            "skipped": self.skipped,
        }


def _usd(value: Decimal) -> str:
    return str(value.quantize(USD_CENT, rounding=ROUND_UP))


def venue_slots(settings: Settings) -> Failover[Exchange]:
    """The configured venues, each with its own breaker, in order of preference."""
    builders: dict[str, Callable[[], Exchange]] = {
        "sandbox-binance": lambda: SandboxExchange.venue("sandbox-binance"),
        "sandbox-coinbase": lambda: SandboxExchange.venue("sandbox-coinbase"),
        "binance": lambda: _binance(settings),
        "coinbase": lambda: _coinbase(settings),
    }
    names = [n.strip() for n in settings.exchange_venues.split(",") if n.strip()]
    unknown = [n for n in names if n not in builders]
    if unknown or not names:
        raise ValueError(f"unknown exchange venues {unknown}; choose from {sorted(builders)}")
    slots = [ProviderSlot(n, builders[n](), CircuitBreaker(n)) for n in names]
    policy = RetryPolicy(attempts=3, timeout=settings.exchange_timeout_seconds)
    return Failover(slots, policy=policy)


def venues_for(services: dict[str, Any], settings: Settings) -> Failover[Exchange]:
    """An app's venues: those it was handed (tests), else built once from settings."""
    existing = services.get(VENUES_SERVICE)
    if isinstance(existing, Failover):
        return existing
    built = venue_slots(settings)
    services[VENUES_SERVICE] = built
    return built


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter is not None else ""


def _coinbase(settings: Settings) -> Exchange:
    url = settings.exchange_coinbase_api_url.rstrip("/")
    return CoinbaseExchange(
        api_key=settings.exchange_coinbase_api_key,
        secret=_secret(settings.exchange_coinbase_secret),
        quote="USD",
        api_urls={"rest": url} if url else None,
        timeout_seconds=settings.exchange_timeout_seconds,
    )


def _binance(settings: Settings) -> Exchange:
    url = settings.exchange_binance_api_url.rstrip("/")
    return CcxtExchange(
        "binance",
        api_key=settings.exchange_binance_api_key,
        secret=_secret(settings.exchange_binance_secret),
        quote="USD" if url else settings.exchange_binance_quote,
        api_urls=binance_urls(url) if url else None,
        timeout_seconds=settings.exchange_timeout_seconds,
    )


async def _cost(
    slot: ProviderSlot[Exchange],
    policy: RetryPolicy,
    asset: str,
    side: Side,
    quantity: Decimal | None,
    quote_amount: Decimal | None,
    max_age: timedelta | None,
) -> RouteCost | str:
    venue = slot.implementation
    try:
        book = await call(
            slot.name,
            lambda: venue.order_book(asset, BOOK_DEPTH),
            policy=policy,
            breaker=slot.breaker,
        )
        rate = await call(
            slot.name, lambda: venue.taker_fee_rate(asset), policy=policy, breaker=slot.breaker
        )
    except ProviderError as exc:
        return exc.code
    if max_age is not None and datetime.now(UTC) - book.at > max_age:
        return STALE
    levels = book.asks if side is Side.BUY else book.bids
    if not levels or not book.bids or not book.asks:
        return "empty book"
    lot = Decimal("0.00000001")
    fill = walk_book(
        levels, quantity=quantity, quote_amount=quote_amount, lot=lot, buying=side is Side.BUY
    )
    if fill is None:
        return "insufficient liquidity"
    best = levels[0][0]
    mid = (book.bids[0][0] + book.asks[0][0]) / 2
    return RouteCost(
        venue=slot.name,
        quantity=fill.quantity,
        cost=fill.cost,
        best_price=best,
        average_price=fill.average_price,
        fee=fill.cost * rate,
        spread=abs(best - mid) * fill.quantity,
        slippage=abs(fill.cost - best * fill.quantity),
    )


async def best_route(
    venues: Failover[Exchange],
    asset: str,
    side: Side,
    *,
    quantity: Decimal | None = None,
    quote_amount: Decimal | None = None,
    max_age: timedelta | None = None,
) -> Route:
    """Rank the healthy venues by total cost for this order; refuse when none can fill it
    (or, with ``max_age``, when every answer was older than that)."""
    costs: list[RouteCost] = []
    skipped: dict[str, str] = {}
    for slot in venues.slots:
        if asset not in slot.implementation.assets():
            skipped[slot.name] = f"does not trade {asset}"
            continue
        if not slot.healthy or slot.breaker.state is BreakerState.OPEN:
            skipped[slot.name] = "unhealthy"
            continue
        found = await _cost(slot, venues.policy, asset, side, quantity, quote_amount, max_age)
        # Passive health: a venue that answered its market data is up (even if its book is
        # too thin for this order); one that failed is down until it answers again.
        answered = not isinstance(found, str) or found in ("insufficient liquidity", "empty book")
        PROVIDER_HEALTH.labels(slot.name).set(1 if answered else 0)
        if isinstance(found, str):
            skipped[slot.name] = found
        else:
            costs.append(found)
    if not costs and "insufficient liquidity" in skipped.values():
        # A venue that answered could not fill it: too large, not a passing outage.
        raise TooLargeForBooksError(
            f"the order is larger than the {asset} order books can fill",
            details={"skipped": skipped},
        )
    if not costs and STALE in skipped.values():
        raise MarketDataStaleError(
            f"the {asset} market data is out of date; try again shortly",
            details={"skipped": skipped, "max_age_seconds": _seconds(max_age)},
        )
    if not costs:
        raise NoRouteError(f"no venue can {side.value} {asset} now", details={"skipped": skipped})
    costs.sort(key=lambda c: (c.total, c.venue))
    return Route(costs[0], tuple(costs), skipped)


def _seconds(age: timedelta | None) -> str | None:
    return None if age is None else f"{age.total_seconds():g}"


def venue(venues: Failover[Exchange], name: str) -> ProviderSlot[Exchange]:
    """The slot of a venue by name."""
    for slot in venues.slots:
        if slot.name == name:
            return slot
    raise NoRouteError(f"venue {name} is not configured", details={"venue": name})


async def venue_answers(venue: Exchange) -> bool:
    """A health probe for ``Failover.check_health``: the venue quotes its first market."""
    ticker = await venue.ticker(venue.assets()[0])
    return ticker.bid > 0 and ticker.ask > ticker.bid
