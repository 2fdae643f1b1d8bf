"""Coinbase (Advanced Trade) through ccxt: what differs from the generic ccxt adapter.

Coinbase takes our id as ``client_order_id`` and answers an order with its id only, so the
fill is read back with the order; it has no lookup by client order id, so an order placed
earlier is found in the product's order list. Its order strings are ``filled_size`` and
``filled_value`` (before ``total_fees``, charged in USD).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from diboas.providers.exchange import ExchangeOrder, OrderNotFoundError, OrderRejectedError, Side
from diboas.providers.exchange_ccxt import CcxtExchange, _dec


class CoinbaseExchange(CcxtExchange):
    """Coinbase Advanced Trade. Credentials are a CDP API key: its name
    (``organizations/…/apiKeys/…``) and its EC private key (PEM), signed ES256 by ccxt.

    Coinbase's market buys spend a quote amount (``quote_size``); only sells go by base
    quantity. A buy by quantity is refused here, and execution buys by amount instead.
    """

    market_buy_by_quantity = False

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("name", "coinbase")
        api_urls = kwargs.pop("api_urls", None)
        super().__init__("coinbase", **kwargs)
        # The currency catalogue (v2 API) is not needed to trade spot markets.
        self.client.has["fetchCurrencies"] = False
        if api_urls is not None:
            self.client.urls["api"] = {"rest": api_urls["rest"]}

    async def market_order(
        self,
        asset: str,
        side: Side,
        *,
        client_order_id: str,
        quantity: Decimal | None = None,
        quote_amount: Decimal | None = None,
    ) -> ExchangeOrder:
        if side is Side.BUY and (quantity is not None or quote_amount is None):
            raise OrderRejectedError(
                "Coinbase market buys spend a quote amount", provider=self.name
            )
        if side is Side.SELL and (quantity is None or quote_amount is not None):
            raise OrderRejectedError("a sell is by base quantity", provider=self.name)
        symbol = self._symbol(asset)
        params = {"client_order_id": client_order_id}
        if quote_amount is not None:
            place = self.client.create_market_buy_order_with_cost(
                symbol, float(quote_amount), params
            )
        else:
            assert quantity is not None  # noqa: S101 - checked above
            place = self.client.create_order(
                symbol, "market", side.value, float(quantity), None, params
            )
        placed = await self._call(lambda: place)
        # A client_order_id used before names the order it made (Coinbase does not place it
        # twice), so this reads back the first order on a retry.
        return await self._by_id(asset, str(placed["id"]))

    async def _by_id(self, asset: str, order_id: str) -> ExchangeOrder:
        raw = await self._call(lambda: self.client.fetch_order(order_id, self._symbol(asset)))
        return await self._order(asset, Side(str(raw["side"]).lower()), raw)

    async def fetch_order(self, asset: str, client_order_id: str) -> ExchangeOrder:
        orders = await self._call(lambda: self.client.fetch_orders(self._symbol(asset)))
        for raw in orders:
            if raw.get("clientOrderId") == client_order_id:
                return await self._order(asset, Side(str(raw["side"]).lower()), raw)
        raise OrderNotFoundError("Order does not exist.", provider=self.name)

    def _filled(self, raw: dict[str, Any]) -> tuple[Decimal, Decimal]:
        info = raw.get("info") or {}
        return (
            _dec(info.get("filled_size", raw.get("filled"))),
            _dec(info.get("filled_value", raw.get("cost"))),
        )
