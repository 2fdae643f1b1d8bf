"""One conformance suite for every Exchange: the in-process sandbox venue; ccxt's Binance
adapter over HTTP to the Binance-shaped sandbox server (HMAC signatures, recvWindow, Binance's
error JSON); and ccxt's Coinbase adapter over HTTP to the Coinbase-Advanced-Trade-shaped
sandbox server (ES256 JWTs from a CDP-style EC key). Every server runs the same deterministic
engine on 127.0.0.1, so the same figures hold for all three.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from diboas.providers.exchange import (
    Exchange,
    InsufficientLiquidityError,
    OrderNotFoundError,
    OrderRejectedError,
    SandboxExchange,
    Side,
)
from diboas.providers.exchange_ccxt import CcxtExchange
from diboas.providers.exchange_coinbase import CoinbaseExchange
from diboas.providers.exchange_coinbase_server import CoinbaseSandboxServer, ec_key_pair
from diboas.providers.exchange_sandbox_server import SandboxExchangeServer, binance_urls

API_KEY = "sandbox-key"
# A fixed instant for the venue's book: the sandbox price moves with time, and a test that
# reads the book and then trades must see the same book both times.
AT = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
SECRET = "sandbox-secret-0123456789"


@pytest.fixture
async def server() -> AsyncIterator[SandboxExchangeServer]:
    srv = SandboxExchangeServer(venue(), API_KEY, SECRET)
    await srv.start()
    yield srv
    await srv.stop()


def venue() -> SandboxExchange:
    return SandboxExchange.venue("sandbox-binance", clock=lambda: AT)


def binance_client(srv: SandboxExchangeServer, *, secret: str = SECRET) -> CcxtExchange:
    return CcxtExchange(
        "binance",
        api_key=API_KEY,
        secret=secret,
        api_urls=binance_urls(srv.base_url),
        timeout_seconds=2,
        name="binance",
    )


COINBASE_KEY = "organizations/org-1/apiKeys/key-1"


@pytest.fixture(params=["sandbox", "ccxt-binance", "ccxt-coinbase"])
async def exchange(request: pytest.FixtureRequest) -> AsyncIterator[Exchange]:
    if request.param == "sandbox":
        yield venue()
        return
    if request.param == "ccxt-coinbase":
        private_pem, public_pem = ec_key_pair()
        cb_server = CoinbaseSandboxServer(venue(), COINBASE_KEY, public_pem)
        await cb_server.start()
        coinbase = CoinbaseExchange(
            api_key=COINBASE_KEY,
            secret=private_pem,
            api_urls={"rest": cb_server.base_url},
            timeout_seconds=2,
        )
        try:
            yield coinbase
        finally:
            await coinbase.close()
            await cb_server.stop()
        return
    srv = SandboxExchangeServer(venue(), API_KEY, SECRET)
    await srv.start()
    client = binance_client(srv)
    try:
        yield client
    finally:
        await client.close()
        await srv.stop()


def _client_id() -> str:
    return "t-" + uuid.uuid4().hex[:20]


async def test_the_ticker_brackets_the_sandbox_mid(exchange: Exchange) -> None:
    ticker = await exchange.ticker("BTC")
    assert ticker.asset == "BTC"
    assert Decimal(0) < ticker.bid < ticker.ask
    # The sandbox mid stays within ±3.5 % of 65,000; the spread is 2 × 8 bps.
    assert Decimal("62000") < ticker.mid < Decimal("68000")
    assert ticker.ask - ticker.bid < ticker.mid * Decimal("0.002")


async def test_the_order_book_is_sorted_best_first(exchange: Exchange) -> None:
    book = await exchange.order_book("ETH", depth=5)
    assert len(book.bids) == len(book.asks) == 5
    assert [p for p, _ in book.asks] == sorted(p for p, _ in book.asks)
    assert [p for p, _ in book.bids] == sorted((p for p, _ in book.bids), reverse=True)
    assert book.bids[0][0] < book.asks[0][0]
    assert all(q == Decimal(8) for _, q in book.asks)


async def test_the_taker_fee_is_the_venues_rate(exchange: Exchange) -> None:
    assert await exchange.taker_fee_rate("BTC") == Decimal("0.001")


async def test_a_buy_by_quote_amount_spends_at_most_that_amount(exchange: Exchange) -> None:
    client_id = _client_id()
    order = await exchange.market_order(
        "BTC", Side.BUY, client_order_id=client_id, quote_amount=Decimal("100.00")
    )
    assert order.status == "filled" and order.side is Side.BUY
    assert order.client_order_id == client_id
    assert Decimal("99.90") <= order.cost <= Decimal("100.00")
    assert order.quantity == order.quantity.quantize(Decimal("0.00000001"))
    assert Decimal("0.0014") < order.quantity < Decimal("0.0017")
    assert order.fee == (order.cost * Decimal("0.001")).quantize(Decimal("0.01"), "ROUND_UP")
    again = await exchange.fetch_order("BTC", client_id)
    assert (again.quantity, again.cost, again.fee) == (order.quantity, order.cost, order.fee)


async def test_a_buy_by_quantity_fills_exactly_that_quantity(exchange: Exchange) -> None:
    if not exchange.market_buy_by_quantity:
        # Coinbase's market buys spend a quote amount: the adapter says so and refuses.
        with pytest.raises(OrderRejectedError):
            await exchange.market_order(
                "ETH", Side.BUY, client_order_id=_client_id(), quantity=Decimal("0.25")
            )
        return
    order = await exchange.market_order(
        "ETH", Side.BUY, client_order_id=_client_id(), quantity=Decimal("0.25")
    )
    assert order.quantity == Decimal("0.25")
    book = await exchange.order_book("ETH", depth=1)
    assert order.cost == (Decimal("0.25") * book.asks[0][0]).quantize(Decimal("0.01"), "ROUND_UP")


async def test_a_sell_walks_the_bids(exchange: Exchange) -> None:
    # 0.75 BTC takes the whole first level (0.5) and half of the second.
    book = await exchange.order_book("BTC", depth=2)
    order = await exchange.market_order(
        "BTC", Side.SELL, client_order_id=_client_id(), quantity=Decimal("0.75")
    )
    expected = Decimal("0.5") * book.bids[0][0] + Decimal("0.25") * book.bids[1][0]
    assert order.side is Side.SELL and order.quantity == Decimal("0.75")
    assert order.cost == expected.quantize(Decimal("0.01"), "ROUND_DOWN")


async def test_more_than_the_book_holds_is_insufficient_liquidity(exchange: Exchange) -> None:
    with pytest.raises(InsufficientLiquidityError) as caught:
        await exchange.market_order(
            "BTC", Side.SELL, client_order_id=_client_id(), quantity=Decimal("5.00000001")
        )
    assert not caught.value.retryable
    assert caught.value.code == "insufficient_liquidity"


async def test_the_maintenance_magic_quantity_is_rejected(exchange: Exchange) -> None:
    with pytest.raises(OrderRejectedError) as caught:
        await exchange.market_order(
            "BTC", Side.SELL, client_order_id=_client_id(), quantity=Decimal("0.00123466")
        )
    assert not caught.value.retryable


async def test_an_unknown_order_is_not_found(exchange: Exchange) -> None:
    with pytest.raises(OrderNotFoundError):
        await exchange.fetch_order("BTC", _client_id())


async def test_placing_the_same_client_order_id_twice_gives_the_first_order(
    exchange: Exchange,
) -> None:
    client_id = _client_id()
    spend = Decimal("150.00")
    first = await exchange.market_order(
        "BTC", Side.BUY, client_order_id=client_id, quote_amount=spend
    )
    if isinstance(exchange, SandboxExchange):
        # The venue itself refuses the duplicate, as Binance does ...
        with pytest.raises(OrderRejectedError, match="Duplicate"):
            await exchange.market_order(
                "BTC", Side.BUY, client_order_id=client_id, quote_amount=spend
            )
        return
    # ... and the adapters answer a duplicate with the order already placed.
    second = await exchange.market_order(
        "BTC", Side.BUY, client_order_id=client_id, quote_amount=spend
    )
    assert second.order_id == first.order_id and second.cost == first.cost
    assert (await exchange.fetch_order("BTC", client_id)).order_id == first.order_id


async def test_the_sandbox_is_deterministic_for_a_given_instant() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    one = SandboxExchange.venue("sandbox-binance", clock=lambda: at)
    two = SandboxExchange.venue("sandbox-binance", clock=lambda: at)
    assert await one.order_book("BTC") == await two.order_book("BTC")
    a = await one.market_order("BTC", Side.BUY, client_order_id="x", quote_amount=Decimal("500"))
    b = await two.market_order("BTC", Side.BUY, client_order_id="x", quote_amount=Decimal("500"))
    assert (a.quantity, a.cost, a.fee) == (b.quantity, b.cost, b.fee)
