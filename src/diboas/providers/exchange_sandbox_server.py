"""The sandbox exchange over HTTP, in the shape of Binance's spot REST API (v3).

A small aiohttp server on 127.0.0.1 that a real client (ccxt's Binance adapter, with its
``urls['api']`` pointed here) talks to exactly as it talks to Binance: public market data,
and signed endpoints that check ``X-MBX-APIKEY``, the HMAC-SHA256 ``signature`` over the
query string and body, and ``timestamp`` against ``recvWindow``. Errors use Binance's
documented JSON, ``{"code": -1022, "msg": "Signature for this request is not valid."}``.

Markets are ``BTCUSD`` and ``ETHUSD`` (the Binance.US shape: quote asset USD). Orders fill at
once against the deterministic book of a ``SandboxExchange``. One departure from Binance: a
market order the book cannot fill whole is refused (``-2010``) rather than partly filled and
expired — the platform never wants partial fills.

Fault drills: ``faults`` is a queue of (HTTP status, body, delay seconds) answered to the
next requests before any other handling — how tests produce 5xx, 429 and timeouts.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from diboas.providers.exchange import (
    ExchangeOrder,
    InsufficientLiquidityError,
    OrderNotFoundError,
    OrderRejectedError,
    SandboxExchange,
    Side,
)
from diboas.providers.market import PriceUnavailableError

QUOTE = "USD"
DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected answer: status and JSON body, after ``delay`` seconds."""

    status: int
    body: dict[str, Any]
    delay: float = 0.0


class BinanceError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _error(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


def _num(value: Decimal) -> str:
    return f"{value:f}"


@dataclass
class SandboxExchangeServer:
    """Binance-shaped HTTP front of a ``SandboxExchange``."""

    engine: SandboxExchange
    api_key: str
    secret: str
    host: str = "127.0.0.1"
    port: int = 0
    faults: list[Fault] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _order_ids: dict[str, int] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        get, post = app.router.add_get, app.router.add_post
        get("/api/v3/ping", self._ping)
        get("/api/v3/time", self._time)
        get("/api/v3/exchangeInfo", self._exchange_info)
        get("/api/v3/ticker/price", self._ticker_price)
        get("/api/v3/ticker/bookTicker", self._book_ticker)
        get("/api/v3/ticker/24hr", self._ticker_24hr)
        get("/api/v3/depth", self._depth)
        post("/api/v3/order", self._new_order)
        get("/api/v3/order", self._query_order)
        get("/sapi/v1/asset/tradeFee", self._trade_fee)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # the bound port when asked for port 0
        assert server is not None  # noqa: S101 - started just above
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- plumbing ---------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        if self.faults:
            fault = self.faults.pop(0)
            if fault.delay:
                await asyncio.sleep(fault.delay)
            return web.json_response(fault.body, status=fault.status)
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except BinanceError as exc:
            return _error(exc.status, exc.code, exc.msg)

    async def _signed(self, request: web.Request) -> dict[str, str]:
        """The request's parameters once its key, signature and timestamp check out."""
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        query = request.query_string
        body = (await request.read()).decode() if request.can_read_body else ""
        # Binance signs the query string followed directly by the body.
        total = query + body
        params = dict(parse_qsl(query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        signature = params.pop("signature", None)
        unsigned = total.replace(f"&signature={signature}", "").replace(
            f"signature={signature}", ""
        )
        expected = hmac.new(self.secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if signature is None or not hmac.compare_digest(signature, expected):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        try:
            timestamp = int(params["timestamp"])
            window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
        except (KeyError, ValueError):
            raise BinanceError(
                400,
                -1102,
                "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.",
            ) from None
        if window > MAX_RECV_WINDOW_MS:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        now = int(time.time() * 1000)
        if timestamp > now + 1000 or now - timestamp > window:
            raise BinanceError(
                400, -1021, "Timestamp for this request is outside of the recvWindow."
            )
        return params

    def _asset(self, symbol: str | None) -> str:
        if symbol is None:
            raise BinanceError(
                400,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        for asset in self.engine.assets():
            if symbol == asset + QUOTE:
                return asset
        raise BinanceError(400, -1121, "Invalid symbol.")

    # --- public -----------------------------------------------------------------------------

    async def _ping(self, _: web.Request) -> web.Response:
        return web.json_response({})

    async def _time(self, _: web.Request) -> web.Response:
        return web.json_response({"serverTime": int(time.time() * 1000)})

    async def _exchange_info(self, _: web.Request) -> web.Response:
        lot = _num(self.engine.model.lot)
        symbols = [
            {
                "symbol": asset + QUOTE,
                "status": "TRADING",
                "baseAsset": asset,
                "baseAssetPrecision": 8,
                "quoteAsset": QUOTE,
                "quotePrecision": 2,
                "quoteAssetPrecision": 2,
                "orderTypes": ["MARKET"],
                "quoteOrderQtyMarketAllowed": True,
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "permissions": ["SPOT"],
                "permissionSets": [["SPOT"]],
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": "0.01",
                        "maxPrice": "10000000.00",
                        "tickSize": "0.01",
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": lot,
                        "maxQty": "9000.00000000",
                        "stepSize": lot,
                    },
                    {"filterType": "NOTIONAL", "minNotional": "1.00", "maxNotional": "9000000.00"},
                ],
            }
            for asset in self.engine.assets()
        ]
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [],
                "symbols": symbols,
            }
        )

    async def _book(self, request: web.Request, depth: int = 1) -> tuple[str, Any]:
        asset = self._asset(request.query.get("symbol"))
        return asset, await self.engine.order_book(asset, depth)

    async def _ticker_price(self, request: web.Request) -> web.Response:
        asset, book = await self._book(request)
        mid = ((book.bids[0][0] + book.asks[0][0]) / 2).quantize(Decimal("0.01"))
        return web.json_response({"symbol": asset + QUOTE, "price": _num(mid)})

    async def _book_ticker(self, request: web.Request) -> web.Response:
        asset, book = await self._book(request)
        return web.json_response(self._best(asset, book))

    def _best(self, asset: str, book: Any) -> dict[str, Any]:
        (bid, bid_qty), (ask, ask_qty) = book.bids[0], book.asks[0]
        return {
            "symbol": asset + QUOTE,
            "bidPrice": _num(bid),
            "bidQty": _num(bid_qty),
            "askPrice": _num(ask),
            "askQty": _num(ask_qty),
        }

    async def _ticker_24hr(self, request: web.Request) -> web.Response:
        asset, book = await self._book(request)
        mid = ((book.bids[0][0] + book.asks[0][0]) / 2).quantize(Decimal("0.01"))
        millis = int(book.at.timestamp() * 1000)
        # The sandbox keeps no trade history: the 24 h figures describe the current book.
        return web.json_response(
            {
                **self._best(asset, book),
                "lastPrice": _num(mid),
                "openPrice": _num(mid),
                "highPrice": _num(book.asks[0][0]),
                "lowPrice": _num(book.bids[0][0]),
                "volume": "0.00000000",
                "quoteVolume": "0.00",
                "openTime": millis - 86_400_000,
                "closeTime": millis,
                "count": 0,
            }
        )

    async def _depth(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            raise BinanceError(
                400, -1100, "Illegal characters found in parameter 'limit'."
            ) from None
        _, book = await self._book(request, depth=limit)
        return web.json_response(
            {
                "lastUpdateId": int(book.at.timestamp() * 1000),
                "bids": [[_num(p), _num(q)] for p, q in book.bids],
                "asks": [[_num(p), _num(q)] for p, q in book.asks],
            }
        )

    # --- signed -----------------------------------------------------------------------------

    async def _trade_fee(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        assets = self.engine.assets()
        if "symbol" in params:
            assets = (self._asset(params["symbol"]),)
        rate = _num(self.engine.model.taker_fee)
        return web.json_response(
            [
                {"symbol": a + QUOTE, "makerCommission": rate, "takerCommission": rate}
                for a in assets
            ]
        )

    async def _new_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        asset = self._asset(params.get("symbol"))
        if params.get("type") != "MARKET":
            raise BinanceError(400, -1116, "Invalid orderType.")
        try:
            side = Side(params.get("side", "").lower())
        except ValueError:
            raise BinanceError(400, -1117, "Invalid side.") from None
        client_id = params.get("newClientOrderId") or f"sandbox-{len(self._order_ids) + 1}"
        try:
            quantity = Decimal(params["quantity"]) if "quantity" in params else None
            quote = Decimal(params["quoteOrderQty"]) if "quoteOrderQty" in params else None
        except ArithmeticError:
            raise BinanceError(400, -1100, "Illegal characters found in a parameter.") from None
        try:
            order = await self.engine.market_order(
                asset, side, client_order_id=client_id, quantity=quantity, quote_amount=quote
            )
        except (InsufficientLiquidityError, OrderRejectedError) as exc:
            raise BinanceError(400, -2010, str(exc)) from None
        except PriceUnavailableError:
            raise BinanceError(400, -1121, "Invalid symbol.") from None
        self._order_ids[client_id] = len(self._order_ids) + 1
        return web.json_response(self._order_json(order, full=True))

    async def _query_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        asset = self._asset(params.get("symbol"))
        client_id = params.get("origClientOrderId")
        if client_id is None and "orderId" in params:
            by_id = {str(v): k for k, v in self._order_ids.items()}
            client_id = by_id.get(params["orderId"])
        try:
            order = await self.engine.fetch_order(asset, client_id or "")
        except OrderNotFoundError:
            raise BinanceError(400, -2013, "Order does not exist.") from None
        return web.json_response(self._order_json(order, full=False))

    def _order_json(self, order: ExchangeOrder, *, full: bool) -> dict[str, Any]:
        millis = int(order.created_at.timestamp() * 1000)
        body: dict[str, Any] = {
            "symbol": order.asset + QUOTE,
            "orderId": self._order_ids[order.client_order_id],
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "transactTime": millis,
            "time": millis,
            "updateTime": millis,
            "price": "0.00",
            "origQty": _num(order.quantity),
            "executedQty": _num(order.quantity),
            "cummulativeQuoteQty": _num(order.cost),
            "status": "FILLED",
            "timeInForce": "GTC",
            "type": "MARKET",
            "side": order.side.value.upper(),
            "workingTime": millis,
            "selfTradePreventionMode": "NONE",
        }
        if full:
            body["fills"] = [
                {
                    "price": _num(order.average_price.quantize(Decimal("0.01"))),
                    "qty": _num(order.quantity),
                    "commission": _num(order.fee),
                    "commissionAsset": QUOTE,
                    "tradeId": body["orderId"],
                }
            ]
        return body


def binance_urls(base_url: str) -> dict[str, str]:
    """ccxt's ``urls['api']`` for Binance, every spot family pointed at ``base_url``."""
    return {
        "public": f"{base_url}/api/v3",
        "private": f"{base_url}/api/v3",
        "v1": f"{base_url}/api/v1",
        "sapi": f"{base_url}/sapi/v1",
        "sapiV2": f"{base_url}/sapi/v2",
        "sapiV3": f"{base_url}/sapi/v3",
        "sapiV4": f"{base_url}/sapi/v4",
    }


__all__ = ["Fault", "SandboxExchangeServer", "binance_urls"]
