"""The sandbox exchange over HTTP, in the shape of Coinbase's Advanced Trade REST API (v3).

A small aiohttp server on 127.0.0.1 that ccxt's Coinbase client (``urls['api']['rest']``
pointed here) talks to as it talks to api.coinbase.com: public market data under
``/api/v3/brokerage/market/...``, and private endpoints authenticated the CDP way — an
``Authorization: Bearer`` JWT signed ES256 with the API key's EC private key, whose ``sub``
and ``kid`` name the key, whose ``uri`` claim is ``"<METHOD> <host><path>"`` and whose
``nbf``/``exp`` bound it to two minutes. The server holds only the public key.

Orders fill at once against a ``SandboxExchange``'s deterministic book. As Coinbase
documents, a ``client_order_id`` used before is not placed again: the answer names the order
that id already made. A failed order is ``{"success": false, "error_response": {...}}``; an
unknown order is 404 ``{"error": "NOT_FOUND", ...}``; bad credentials 401
``{"error": "unauthorized", ...}``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jwt
from aiohttp import web

from diboas.providers.exchange import (
    ExchangeOrder,
    InsufficientLiquidityError,
    OrderRejectedError,
    SandboxExchange,
    Side,
)
from diboas.providers.exchange_sandbox_server import Fault

QUOTE = "USD"
PREFIX = "/api/v3/brokerage"


def _num(value: Decimal) -> str:
    return f"{value:f}"


class CoinbaseError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


@dataclass
class CoinbaseSandboxServer:
    """Coinbase-Advanced-Trade-shaped HTTP front of a ``SandboxExchange``."""

    engine: SandboxExchange
    key_name: str
    public_key_pem: str
    host: str = "127.0.0.1"
    port: int = 0
    faults: list[Fault] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _ids: dict[str, str] = field(default_factory=dict)  # order id -> client order id

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        get, post = app.router.add_get, app.router.add_post
        get(f"{PREFIX}/market/products", self._products)
        get(f"{PREFIX}/market/product_book", self._product_book)
        get(f"{PREFIX}/market/products/{{product_id}}/ticker", self._ticker)
        get(f"{PREFIX}/transaction_summary", self._transaction_summary)
        post(f"{PREFIX}/orders", self._create_order)
        get(f"{PREFIX}/orders/historical/batch", self._list_orders)
        get(f"{PREFIX}/orders/historical/{{order_id}}", self._get_order)
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

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        if self.faults:
            fault = self.faults.pop(0)
            return web.json_response(fault.body, status=fault.status)
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except CoinbaseError as exc:
            return web.json_response(
                {"error": exc.error, "error_details": exc.message, "message": exc.message},
                status=exc.status,
            )

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise CoinbaseError(401, "unauthorized", "Unauthorized")
        token = header.removeprefix("Bearer ")
        try:
            claims = jwt.decode(
                token,
                self.public_key_pem,
                algorithms=["ES256"],
                audience="retail_rest_api_proxy",
                issuer="coinbase-cloud",
                options={"require": ["exp", "nbf", "sub", "uri"]},
            )
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise CoinbaseError(401, "unauthorized", "Unauthorized") from None
        # ccxt drops only an https:// scheme from the URI it signs; the server's own URL is
        # rebuilt the same way.
        url = f"{self.base_url}{request.path}".replace("https://", "")
        if claims["sub"] != self.key_name or kid != self.key_name:
            raise CoinbaseError(401, "unauthorized", "Unauthorized")
        if claims["uri"] != f"{request.method} {url}":
            raise CoinbaseError(401, "unauthorized", "Unauthorized")

    def _asset(self, product_id: str | None) -> str:
        for asset in self.engine.assets():
            if product_id == f"{asset}-{QUOTE}":
                return asset
        raise CoinbaseError(404, "NOT_FOUND", "ProductID is invalid")

    # --- public -----------------------------------------------------------------------------

    async def _products(self, request: web.Request) -> web.Response:
        if request.query.get("product_type", "SPOT") != "SPOT":
            return web.json_response({"products": [], "num_products": 0})
        products = []
        for asset in self.engine.assets():
            book = await self.engine.order_book(asset, 1)
            mid = (book.bids[0][0] + book.asks[0][0]) / 2
            products.append(
                {
                    "product_id": f"{asset}-{QUOTE}",
                    "price": _num(mid.quantize(Decimal("0.01"))),
                    "base_increment": _num(self.engine.model.lot),
                    "quote_increment": "0.01",
                    "quote_min_size": "1",
                    "quote_max_size": "10000000",
                    "base_min_size": _num(self.engine.model.lot),
                    "base_max_size": "10000",
                    "base_name": asset,
                    "quote_name": "US Dollar",
                    "status": "online",
                    "cancel_only": False,
                    "limit_only": False,
                    "post_only": False,
                    "trading_disabled": False,
                    "is_disabled": False,
                    "product_type": "SPOT",
                    "quote_currency_id": QUOTE,
                    "base_currency_id": asset,
                    "base_display_symbol": asset,
                    "quote_display_symbol": QUOTE,
                    "price_increment": "0.01",
                    "display_name": f"{asset}-{QUOTE}",
                    "view_only": False,
                }
            )
        return web.json_response({"products": products, "num_products": len(products)})

    async def _product_book(self, request: web.Request) -> web.Response:
        asset = self._asset(request.query.get("product_id"))
        limit = int(request.query.get("limit", "50"))
        book = await self.engine.order_book(asset, limit)
        return web.json_response(
            {
                "pricebook": {
                    "product_id": f"{asset}-{QUOTE}",
                    "bids": [{"price": _num(p), "size": _num(q)} for p, q in book.bids],
                    "asks": [{"price": _num(p), "size": _num(q)} for p, q in book.asks],
                    "time": book.at.isoformat().replace("+00:00", "Z"),
                }
            }
        )

    async def _ticker(self, request: web.Request) -> web.Response:
        asset = self._asset(request.match_info["product_id"])
        book = await self.engine.order_book(asset, 1)
        return web.json_response(
            {"trades": [], "best_bid": _num(book.bids[0][0]), "best_ask": _num(book.asks[0][0])}
        )

    # --- private ----------------------------------------------------------------------------

    async def _transaction_summary(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        rate = _num(self.engine.model.taker_fee)
        return web.json_response(
            {
                "total_volume": 0,
                "total_fees": 0,
                "fee_tier": {
                    "pricing_tier": "Advanced 1",
                    "usd_from": "0",
                    "usd_to": "10000",
                    "taker_fee_rate": rate,
                    "maker_fee_rate": rate,
                },
            }
        )

    async def _create_order(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        body = await request.json()
        client_id = str(body.get("client_order_id") or uuid.uuid4())
        asset = self._asset(body.get("product_id"))
        side = Side(str(body.get("side", "")).lower())
        config = (body.get("order_configuration") or {}).get("market_market_ioc") or {}
        existing = self.engine.orders.get(client_id)
        if existing is None:
            quote = config.get("quote_size")
            base = config.get("base_size")
            try:
                order = await self.engine.market_order(
                    asset,
                    side,
                    client_order_id=client_id,
                    quantity=None if base is None else Decimal(str(base)),
                    quote_amount=None if quote is None else Decimal(str(quote)),
                )
            except (InsufficientLiquidityError, OrderRejectedError) as exc:
                return web.json_response(
                    {
                        "success": False,
                        "failure_reason": "UNKNOWN_FAILURE_REASON",
                        "error_response": {
                            "error": "UNKNOWN_FAILURE_REASON",
                            "message": str(exc),
                            "error_details": str(exc),
                            "preview_failure_reason": "PREVIEW_INVALID_ORDER_CONFIG",
                        },
                        "order_configuration": body.get("order_configuration"),
                    }
                )
            self._ids[order.order_id] = client_id
            existing = order
        return web.json_response(
            {
                "success": True,
                "success_response": {
                    "order_id": existing.order_id,
                    "product_id": f"{asset}-{QUOTE}",
                    "side": existing.side.value.upper(),
                    "client_order_id": client_id,
                },
                "order_configuration": body.get("order_configuration"),
            }
        )

    def _order_json(self, order: ExchangeOrder) -> dict[str, Any]:
        size_key = "base_size"
        return {
            "order_id": order.order_id,
            "product_id": f"{order.asset}-{QUOTE}",
            "user_id": "sandbox",
            "order_configuration": {"market_market_ioc": {size_key: _num(order.quantity)}},
            "side": order.side.value.upper(),
            "client_order_id": order.client_order_id,
            "status": "FILLED",
            "time_in_force": "IMMEDIATE_OR_CANCEL",
            "created_time": order.created_at.isoformat().replace("+00:00", "Z"),
            "completion_percentage": "100",
            "filled_size": _num(order.quantity),
            "average_filled_price": _num(order.average_price.quantize(Decimal("0.01"))),
            "fee": "",
            "number_of_fills": "1",
            "filled_value": _num(order.cost),
            "pending_cancel": False,
            "size_in_quote": False,
            "total_fees": _num(order.fee),
            "size_inclusive_of_fees": False,
            "total_value_after_fees": _num(order.cost + order.fee),
            "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": "MARKET",
            "reject_reason": "",
            "settled": True,
            "product_type": "SPOT",
        }

    async def _get_order(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        client_id = self._ids.get(request.match_info["order_id"])
        order = None if client_id is None else self.engine.orders.get(client_id)
        if order is None:
            raise CoinbaseError(404, "NOT_FOUND", "order with this orderID was not found")
        return web.json_response({"order": self._order_json(order)})

    async def _list_orders(self, request: web.Request) -> web.Response:
        self._authenticate(request)
        products = request.query.getall("product_ids", []) + request.query.getall("product_id", [])
        orders = [
            self._order_json(o)
            for o in self.engine.orders.values()
            if not products or f"{o.asset}-{QUOTE}" in products
        ]
        orders.sort(key=lambda o: o["created_time"], reverse=True)
        return web.json_response({"orders": orders, "has_next": False, "cursor": ""})


def ec_key_pair() -> tuple[str, str]:
    """A fresh P-256 key pair (private PEM, public PEM): what a CDP API key is."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


__all__ = ["CoinbaseSandboxServer", "ec_key_pair"]
