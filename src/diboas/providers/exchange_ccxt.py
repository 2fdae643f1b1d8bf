"""Real venues through ccxt's asynchronous client (``ccxt.async_support``): Binance and
Coinbase, behind the ``Exchange`` interface.

ccxt speaks each vendor's REST API and signs requests; this adapter turns its unified
structures into Decimals (ccxt hands numbers over as floats, so each is read through its
shortest decimal text, and the raw ``info`` strings are preferred where the vendor gives
them), passes our client order id through (Binance ``newClientOrderId``, Coinbase
``client_order_id``), and maps ccxt's exceptions — and Binance's numeric error codes, which
ccxt only maps for Binance's own host names — onto retryable and final ``ExchangeError``s.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import ROUND_UP, Decimal
from typing import Any, TypeVar

import ccxt.async_support as ccxt_async  # type: ignore[import-untyped]
from ccxt.base import errors as ccxt_errors  # type: ignore[import-untyped]

from diboas.providers.exchange import (
    USD_CENT,
    ExchangeAuthError,
    ExchangeError,
    ExchangeOrder,
    ExchangeUnavailableError,
    InsufficientLiquidityError,
    OrderBook,
    OrderNotFoundError,
    OrderRejectedError,
    Side,
    Ticker,
)
from diboas.providers.resilience import ProviderTimeoutError

T = TypeVar("T")

# Binance's documented error codes (https://developers.binance.com/docs/binance-spot-api-docs/errors)
_RETRYABLE_CODES = {-1000, -1001, -1003, -1006, -1007, -1008, -1021}
_AUTH_CODES = {-1022, -2014, -2015}
_NOT_FOUND_CODES = {-2013}
_CODE = re.compile(r'"code"\s*:\s*(-?\d+)')


def _dec(value: Any) -> Decimal:
    """A ccxt number as a Decimal: through its text, never through binary arithmetic."""
    if value is None:
        raise ExchangeError("the venue left out a number", code="bad_response")
    return Decimal(str(value))


async def in_own_decimal_context(call: Callable[[], Awaitable[T]]) -> T:
    """Run a ccxt call in a decimal context of its own: ccxt's ``decimal_to_precision`` sets
    the current context's rounding to half-up (and traps underflow), which would otherwise
    change how every later Decimal in this task — and the tasks sharing its context — rounds."""
    with decimal.localcontext():
        return await call()


def map_error(exc: Exception, provider: str) -> ExchangeError:  # noqa: PLR0911 - one exit per error family reads plainer than a table
    """Our error for a ccxt exception (retryable or final)."""
    message = str(exc)
    if isinstance(exc, ccxt_errors.RequestTimeout):
        return ExchangeUnavailableError(message, provider=provider, code="provider_timeout")
    if isinstance(exc, ccxt_errors.DDoSProtection | ccxt_errors.RateLimitExceeded):
        return ExchangeUnavailableError(message, provider=provider, code="rate_limited")
    if isinstance(exc, ccxt_errors.NetworkError):
        return ExchangeUnavailableError(message, provider=provider)
    if isinstance(exc, ccxt_errors.AuthenticationError):
        return ExchangeAuthError(message, provider=provider)
    if isinstance(exc, ccxt_errors.OrderNotFound):
        return OrderNotFoundError(message, provider=provider)
    found = _CODE.search(message)
    code = int(found.group(1)) if found else None
    if code in _RETRYABLE_CODES:
        return ExchangeUnavailableError(message, provider=provider)
    if code in _AUTH_CODES:
        return ExchangeAuthError(message, provider=provider)
    if code in _NOT_FOUND_CODES:
        return OrderNotFoundError(message, provider=provider)
    if "liquidity" in message.lower():
        return InsufficientLiquidityError(message, provider=provider)
    if '"error_response"' in message:  # Coinbase: {"success": false, "error_response": {...}}
        return OrderRejectedError(message, provider=provider)
    if "NOT_FOUND" in message:  # Coinbase: 404 {"error": "NOT_FOUND", ...}
        return OrderNotFoundError(message, provider=provider)
    if isinstance(exc, ccxt_errors.InvalidOrder | ccxt_errors.BadRequest) or code is not None:
        return OrderRejectedError(message, provider=provider)
    return ExchangeError(message, provider=provider, code="exchange_error")


class CcxtExchange:
    """One venue through ccxt. ``api_urls`` replaces the client's ``urls['api']`` (a local
    counterpart in tests); ``quote`` is the venue's USD market (``USD``, or ``USDT`` on
    Binance's global site, taken as one dollar)."""

    market_buy_by_quantity = True

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str,
        secret: str,
        quote: str = "USD",
        assets: tuple[str, ...] = ("BTC", "ETH"),
        api_urls: dict[str, str] | None = None,
        timeout_seconds: float = 10.0,
        name: str | None = None,
    ) -> None:
        self.name = name or exchange_id
        self.quote = quote
        self._assets = assets
        client_class = getattr(ccxt_async, exchange_id)
        options: dict[str, Any] = {"defaultType": "spot"}
        if exchange_id == "binance":
            # Only spot markets: the futures and margin catalogues are other hosts and unused.
            options.update(
                {
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchMargins": False,
                    "fetchCurrencies": False,
                }
            )
        self.client: Any = client_class(
            {
                "apiKey": api_key,
                "secret": secret,
                "timeout": int(timeout_seconds * 1000),
                "enableRateLimit": True,
                "options": options,
            }
        )
        if api_urls is not None:
            self.client.urls["api"] = dict(api_urls)
        self.client.handle_errors = self._status_first(self.client.handle_errors)

    @staticmethod
    def _status_first(vendor_handler: Callable[..., Any]) -> Callable[..., Any]:
        """ccxt reads a vendor's error body before the HTTP status, so a 503 carrying JSON
        can come out as a final error. A 5xx (outcome unknown, as Binance documents) and a
        429 are retryable whatever the body says."""

        def handle_errors(code: int, reason: str, url: str, *rest: Any) -> Any:
            if code in (418, 429):
                raise ccxt_errors.RateLimitExceeded(f"{code} {reason} {url}")
            if code >= 500:  # the HTTP server-error class
                raise ccxt_errors.ExchangeNotAvailable(f"{code} {reason} {url}")
            return vendor_handler(code, reason, url, *rest)

        return handle_errors

    def assets(self) -> tuple[str, ...]:
        return self._assets

    def _symbol(self, asset: str) -> str:
        return f"{asset}/{self.quote}"

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await in_own_decimal_context(call)
        except ccxt_errors.BaseError as exc:
            raise map_error(exc, self.name) from exc
        except TimeoutError as exc:
            raise ProviderTimeoutError(f"{self.name} did not answer", provider=self.name) from exc

    async def ticker(self, asset: str) -> Ticker:
        raw = await self._call(lambda: self.client.fetch_ticker(self._symbol(asset)))
        return Ticker(self.name, asset, _dec(raw["bid"]), _dec(raw["ask"]), _now(raw))

    async def order_book(self, asset: str, depth: int = 20) -> OrderBook:
        raw = await self._call(lambda: self.client.fetch_order_book(self._symbol(asset), depth))
        return OrderBook(
            self.name,
            asset,
            tuple((_dec(p), _dec(q)) for p, q, *_ in raw["bids"]),
            tuple((_dec(p), _dec(q)) for p, q, *_ in raw["asks"]),
            _now(raw),
        )

    async def taker_fee_rate(self, asset: str) -> Decimal:
        raw = await self._call(lambda: self.client.fetch_trading_fee(self._symbol(asset)))
        return _dec(raw["taker"])

    async def market_order(
        self,
        asset: str,
        side: Side,
        *,
        client_order_id: str,
        quantity: Decimal | None = None,
        quote_amount: Decimal | None = None,
    ) -> ExchangeOrder:
        if (quantity is None) == (quote_amount is None) or (
            side is Side.SELL and quote_amount is not None
        ):
            raise OrderRejectedError("a buy by quantity or quote amount; a sell by quantity")
        symbol = self._symbol(asset)
        params = {"clientOrderId": client_order_id}
        if quote_amount is not None:
            place = self.client.create_market_buy_order_with_cost(
                symbol, float(quote_amount), dict(params)
            )
        else:
            assert quantity is not None  # noqa: S101 - checked above
            # ccxt formats the amount back to the market's step with decimal_to_precision.
            place = self.client.create_order(
                symbol, "market", side.value, float(quantity), None, dict(params)
            )
        try:
            raw = await self._call(lambda: place)
        except OrderRejectedError as exc:
            if "duplicate" not in str(exc).lower():
                raise
            # The same client order id was placed before (our retry after a lost answer):
            # that order is the answer.
            return await self.fetch_order(asset, client_order_id)
        return await self._order(asset, side, raw)

    async def fetch_order(self, asset: str, client_order_id: str) -> ExchangeOrder:
        raw = await self._call(
            lambda: self.client.fetch_order(
                None, self._symbol(asset), {"origClientOrderId": client_order_id}
            )
        )
        return await self._order(asset, Side(str(raw["side"]).lower()), raw)

    async def _order(self, asset: str, side: Side, raw: dict[str, Any]) -> ExchangeOrder:
        quantity, cost = self._filled(raw)
        fee, base_fee = await self._fees(asset, raw, cost)
        status = "filled" if raw.get("status") == "closed" else str(raw.get("status"))
        return ExchangeOrder(
            exchange=self.name,
            order_id=str(raw["id"]),
            client_order_id=str(raw.get("clientOrderId") or ""),
            asset=asset,
            side=side,
            status=status,
            # A commission taken in the bought asset (Binance's default for buys) never
            # reaches us: the quantity we hold is what is left after it.
            quantity=quantity - base_fee,
            cost=cost,
            fee=fee,
            created_at=_now(raw),
        )

    def _filled(self, raw: dict[str, Any]) -> tuple[Decimal, Decimal]:
        """(base quantity filled, quote cost before fees), from the vendor's own strings."""
        info = raw.get("info") or {}
        return (
            _dec(info.get("executedQty", raw.get("filled"))),
            _dec(info.get("cummulativeQuoteQty", raw.get("cost"))),
        )

    async def _fees(
        self, asset: str, raw: dict[str, Any], cost: Decimal
    ) -> tuple[Decimal, Decimal]:
        """(fee in quote currency, fee taken in the base asset)."""
        fees = [f for f in (raw.get("fees") or [raw.get("fee")]) if f and f.get("cost") is not None]
        quote_fee = sum(
            (_dec(f["cost"]) for f in fees if f.get("currency") == self.quote), Decimal(0)
        )
        base_fee = sum((_dec(f["cost"]) for f in fees if f.get("currency") == asset), Decimal(0))
        if fees and all(f.get("currency") in (self.quote, asset) for f in fees):
            return quote_fee.quantize(USD_CENT, rounding=ROUND_UP), base_fee
        # The order query (unlike the order answer) carries no fills, or the venue charged
        # in a third asset (e.g. BNB): count the fee at the venue's taker rate on the cost.
        rate = await self.taker_fee_rate(asset)
        return (cost * rate).quantize(USD_CENT, rounding=ROUND_UP), Decimal(0)

    async def close(self) -> None:
        await self.client.close()


def _now(raw: dict[str, Any]) -> datetime:
    millis = raw.get("timestamp")
    if isinstance(millis, int | float):
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    return datetime.now(UTC)


__all__ = ["CcxtExchange", "map_error"]
