"""Exchanges: the interface every venue implements, and the deterministic sandbox venue.

An exchange quotes a market (ticker, order book, taker fee) and fills market orders — a buy
by quote amount ("spend 100 USD") or by base quantity ("buy 0.001 BTC"), a sell by base
quantity — each carrying a client order id derived from the platform's own ids, so a retried
call is the same order to the venue. Amounts are Decimals; quote currency is USD (or a
USD-pegged stablecoin the adapter names).

Implementations: ``SandboxExchange`` (here; in process), the same engine over HTTP in the
Binance spot REST shape (``exchange_sandbox_server``), and real venues through ccxt
(``exchange_ccxt``). One conformance suite runs against all of them.

Sandbox magic values (documented, never random):

- an order larger than the order book's depth is refused with ``insufficient_liquidity``
  (by default 10 levels of ``level_quantity`` each: 5 BTC or 80 ETH per side);
- a base quantity whose last two decimals at the lot size are ``66`` (e.g. ``0.00123466``
  BTC) is refused by the venue as ``order_rejected`` ("market closed for maintenance").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from enum import StrEnum
from typing import Protocol

from diboas.providers.market import PriceUnavailableError, SandboxPriceFeed
from diboas.providers.resilience import ProviderError

USD_CENT = Decimal("0.01")


class Side(StrEnum):
    """Which way an order goes."""

    BUY = "buy"
    SELL = "sell"


class ExchangeError(ProviderError):
    """A venue refused or failed a call (``retryable`` says whether to try again)."""


class ExchangeAuthError(ExchangeError):
    """The venue refused our credentials or signature: a configuration fault, not retried."""

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message, provider=provider, retryable=False, code="exchange_auth")


class InsufficientLiquidityError(ExchangeError):
    """The book is too thin for the order: retrying the same order will not help."""

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message, provider=provider, retryable=False, code="insufficient_liquidity")


class OrderRejectedError(ExchangeError):
    """The venue refused the order for a reason of its own (market closed, bad size)."""

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message, provider=provider, retryable=False, code="order_rejected")


class OrderNotFoundError(ExchangeError):
    """The venue knows no order with that id."""

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message, provider=provider, retryable=False, code="order_not_found")


class ExchangeUnavailableError(ExchangeError):
    """The venue is down, overloaded or rate-limiting us: the same call may succeed later."""

    def __init__(self, message: str, *, provider: str = "", code: str = "exchange_down") -> None:
        super().__init__(message, provider=provider, retryable=True, code=code)


@dataclass(frozen=True, slots=True)
class Ticker:
    """Best bid and ask of a market, and the mid between them."""

    exchange: str
    asset: str
    bid: Decimal
    ask: Decimal
    at: datetime

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Price levels (price, base quantity): bids best (highest) first, asks best (lowest) first."""

    exchange: str
    asset: str
    bids: tuple[tuple[Decimal, Decimal], ...]
    asks: tuple[tuple[Decimal, Decimal], ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class Fill:
    """What walking the book for an order would give: base quantity and quote cost."""

    quantity: Decimal
    cost: Decimal

    @property
    def average_price(self) -> Decimal:
        return self.cost / self.quantity


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    """An order as the venue reports it. ``cost`` is in quote currency; ``fee`` too."""

    exchange: str
    order_id: str
    client_order_id: str
    asset: str
    side: Side
    status: str  # "filled" (market orders here fill whole or are refused)
    quantity: Decimal
    cost: Decimal
    fee: Decimal
    created_at: datetime

    @property
    def average_price(self) -> Decimal:
        return self.cost / self.quantity


class Exchange(Protocol):
    """A venue that quotes and fills market orders against USD. A venue whose market buys
    are by quote amount only (Coinbase) says so with ``market_buy_by_quantity = False``."""

    name: str
    market_buy_by_quantity: bool

    def assets(self) -> tuple[str, ...]:
        """The base assets the venue trades against USD."""
        ...

    async def ticker(self, asset: str) -> Ticker:
        """Best bid and ask now."""
        ...

    async def order_book(self, asset: str, depth: int = 20) -> OrderBook:
        """The top ``depth`` levels of each side."""
        ...

    async def taker_fee_rate(self, asset: str) -> Decimal:
        """The fee a market order pays, as a fraction of its quote cost (0.001 = 0.1 %)."""
        ...

    async def market_order(
        self,
        asset: str,
        side: Side,
        *,
        client_order_id: str,
        quantity: Decimal | None = None,
        quote_amount: Decimal | None = None,
    ) -> ExchangeOrder:
        """Fill a market order: a buy by ``quote_amount`` or ``quantity``, a sell by ``quantity``."""
        ...

    async def fetch_order(self, asset: str, client_order_id: str) -> ExchangeOrder:
        """An order placed earlier, by our client order id."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def walk_book(
    levels: tuple[tuple[Decimal, Decimal], ...],
    *,
    quantity: Decimal | None = None,
    quote_amount: Decimal | None = None,
    lot: Decimal,
    buying: bool = True,
) -> Fill | None:
    """Fill ``quantity`` (or spend ``quote_amount``) against ``levels``, best first.

    Spending a quote amount buys whole lots only (rounded down); the cost is rounded to the
    cent in the venue's favour (up for a buy, down for a sell's proceeds). None when the
    levels cannot fill it.
    """
    if (quantity is None) == (quote_amount is None):
        raise ValueError("walk the book by quantity or by quote amount")
    filled = Decimal(0)
    cost = Decimal(0)
    for price, size in levels:
        if quantity is not None:
            take = min(size, quantity - filled)
        else:
            assert quote_amount is not None  # noqa: S101 - checked above
            take = min(size, ((quote_amount - cost) / price).quantize(lot, rounding=ROUND_DOWN))
        if take <= 0:
            break
        filled += take
        cost += take * price
        if take < size or filled == quantity:
            break
    else:
        # Every level was taken whole and the order still wants more: the book is too thin.
        return None
    if filled <= 0:
        return None
    return Fill(filled, cost.quantize(USD_CENT, rounding=ROUND_UP if buying else ROUND_DOWN))


# --- the sandbox ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenueModel:
    """How a sandbox venue quotes: spread around the sandbox mid, depth, taker fee."""

    half_spread: Decimal  # fraction of mid (0.0002 = 2 bps each side)
    level_step: Decimal  # each deeper level this much further from mid
    levels: int
    level_quantity: Mapping[str, Decimal]
    taker_fee: Decimal
    lot: Decimal = Decimal("0.00000001")


# Two sandbox venues modelled on their vendors' public retail schedules: one cheap to trade
# with a wider spread, one dearer with a tighter spread — so routing has a real choice.
SANDBOX_VENUES: Mapping[str, VenueModel] = {
    "sandbox-binance": VenueModel(
        half_spread=Decimal("0.0008"),
        level_step=Decimal("0.0005"),
        levels=10,
        level_quantity={"BTC": Decimal("0.5"), "ETH": Decimal("8")},
        taker_fee=Decimal("0.001"),
    ),
    "sandbox-coinbase": VenueModel(
        half_spread=Decimal("0.0001"),
        level_step=Decimal("0.0003"),
        levels=10,
        level_quantity={"BTC": Decimal("0.5"), "ETH": Decimal("8")},
        taker_fee=Decimal("0.006"),
    ),
}

_MAINTENANCE_SUFFIX = 66


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SandboxExchange:
    """A deterministic venue: its book is built around the sandbox price feed's mid at the
    instant asked, so the same clock gives the same book and the same fills.

    Orders are kept in memory by client order id; placing the same client order id again
    is refused as a duplicate, like Binance (``fetch_order`` finds the first one).
    """

    name: str = "sandbox-binance"
    market_buy_by_quantity: bool = True
    model: VenueModel = field(default_factory=lambda: SANDBOX_VENUES["sandbox-binance"])
    feed: SandboxPriceFeed = field(default_factory=SandboxPriceFeed)
    clock: Callable[[], datetime] = _utc_now
    orders: dict[str, ExchangeOrder] = field(default_factory=dict)

    @classmethod
    def venue(cls, name: str, **kwargs: object) -> SandboxExchange:
        """One of the named sandbox venues."""
        return cls(name=name, model=SANDBOX_VENUES[name], **kwargs)  # type: ignore[arg-type]

    def assets(self) -> tuple[str, ...]:
        return tuple(sorted(self.model.level_quantity))

    def _check(self, asset: str) -> None:
        if asset not in self.model.level_quantity:
            raise PriceUnavailableError(
                f"{self.name} does not trade {asset}", details={"asset": asset}
            )

    async def _mid(self, asset: str, at: datetime) -> Decimal:
        self._check(asset)
        return (await self.feed.prices_usd([asset], at))[asset]

    async def order_book(self, asset: str, depth: int = 20) -> OrderBook:
        at = self.clock()
        return self.book_at(asset, await self._mid(asset, at), at, depth)

    def book_at(self, asset: str, mid: Decimal, at: datetime, depth: int = 20) -> OrderBook:
        """The book around ``mid``: asks rounded up, bids down, to the cent."""
        m = self.model
        size = m.level_quantity[asset]
        bids, asks = [], []
        for level in range(min(depth, m.levels)):
            offset = m.half_spread + level * m.level_step
            asks.append(((mid * (1 + offset)).quantize(USD_CENT, rounding=ROUND_UP), size))
            bids.append(((mid * (1 - offset)).quantize(USD_CENT, rounding=ROUND_DOWN), size))
        return OrderBook(self.name, asset, tuple(bids), tuple(asks), at)

    async def ticker(self, asset: str) -> Ticker:
        book = await self.order_book(asset, depth=1)
        return Ticker(self.name, asset, book.bids[0][0], book.asks[0][0], book.at)

    async def taker_fee_rate(self, asset: str) -> Decimal:
        self._check(asset)
        return self.model.taker_fee

    async def market_order(
        self,
        asset: str,
        side: Side,
        *,
        client_order_id: str,
        quantity: Decimal | None = None,
        quote_amount: Decimal | None = None,
    ) -> ExchangeOrder:
        if client_order_id in self.orders:
            raise OrderRejectedError("Duplicate order sent.", provider=self.name)
        if side is Side.SELL and quote_amount is not None:
            raise OrderRejectedError("a sell is by base quantity", provider=self.name)
        if (quantity is None) == (quote_amount is None):
            raise OrderRejectedError("give a quantity or a quote amount", provider=self.name)
        lot = self.model.lot
        if quantity is not None:
            if quantity <= 0 or quantity != quantity.quantize(lot):
                raise OrderRejectedError(
                    f"quantity must be a multiple of {lot}", provider=self.name
                )
            if int(quantity / lot) % 100 == _MAINTENANCE_SUFFIX:
                raise OrderRejectedError("Market is closed for maintenance.", provider=self.name)
        book = await self.order_book(asset)
        levels = book.asks if side is Side.BUY else book.bids
        fill = walk_book(
            levels, quantity=quantity, quote_amount=quote_amount, lot=lot, buying=side is Side.BUY
        )
        if fill is None:
            raise InsufficientLiquidityError(
                "Order book liquidity is less than the requested size.", provider=self.name
            )
        order = ExchangeOrder(
            exchange=self.name,
            order_id=str(uuid.uuid4()),
            client_order_id=client_order_id,
            asset=asset,
            side=side,
            status="filled",
            quantity=fill.quantity,
            cost=fill.cost,
            fee=(fill.cost * self.model.taker_fee).quantize(USD_CENT, rounding=ROUND_UP),
            created_at=book.at,
        )
        self.orders[client_order_id] = order
        return order

    async def fetch_order(self, asset: str, client_order_id: str) -> ExchangeOrder:
        order = self.orders.get(client_order_id)
        if order is None or order.asset != asset:
            raise OrderNotFoundError("Order does not exist.", provider=self.name)
        return order

    async def close(self) -> None:
        return None
