"""ccxt's Binance adapter against the Binance-shaped sandbox server: what the server checks
(API key, HMAC signature, recvWindow), how Binance's errors and HTTP failures map onto
retryable and final errors, resilience through the shared retry/breaker/failover, the
exchange price feed, and route ranking."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, getcontext

import aiohttp
import pytest
from ccxt.base.decimal_to_precision import ROUND, decimal_to_precision  # type: ignore[import-untyped]
from prometheus_client import REGISTRY

from diboas.providers.exchange import (
    ExchangeAuthError,
    ExchangeUnavailableError,
    OrderNotFoundError,
    SandboxExchange,
    Side,
)
from diboas.providers.exchange_ccxt import CcxtExchange, in_own_decimal_context
from diboas.providers.exchange_coinbase import CoinbaseExchange
from diboas.providers.exchange_feed import ExchangePriceFeed
from diboas.providers.exchange_routing import (
    NoRouteError,
    TooLargeForBooksError,
    best_route,
    venue_answers,
    venue_slots,
)
from diboas.providers.exchange_sandbox_server import Fault, SandboxExchangeServer, binance_urls
from diboas.providers.market import PriceUnavailableError, SandboxPriceFeed
from diboas.providers.resilience import (
    CircuitBreaker,
    Failover,
    ProviderSlot,
    RetryPolicy,
    call,
)
from diboas.settings import Settings
from tests.providers.test_exchange_conformance import API_KEY, SECRET, binance_client, venue


@pytest.fixture
async def server() -> AsyncIterator[SandboxExchangeServer]:
    srv = SandboxExchangeServer(venue(), API_KEY, SECRET)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def binance(server: SandboxExchangeServer) -> AsyncIterator[CcxtExchange]:
    client = binance_client(server)
    yield client
    await client.close()


def _signed(query: str, secret: str = SECRET) -> str:
    signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={signature}"


async def _raw(
    server: SandboxExchangeServer, method: str, path: str, **kw: object
) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            server.base_url + path,
            **kw,  # type: ignore[arg-type]
        ) as response,
    ):
        return response.status, await response.json()


# --- what the server checks (raw HTTP, as Binance documents it) --------------------------------


async def test_a_bad_signature_is_refused_with_binance_code_1022(
    server: SandboxExchangeServer,
) -> None:
    query = f"symbol=BTCUSD&side=BUY&type=MARKET&quantity=0.01&timestamp={int(time.time() * 1000)}"
    status, body = await _raw(
        server,
        "POST",
        "/api/v3/order",
        data=_signed(query, secret="not-the-secret"),
        headers={"X-MBX-APIKEY": API_KEY, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 400
    assert body == {"code": -1022, "msg": "Signature for this request is not valid."}
    assert not server.engine.orders  # nothing was placed


async def test_a_good_signature_places_the_order(server: SandboxExchangeServer) -> None:
    query = f"symbol=BTCUSD&side=BUY&type=MARKET&quantity=0.01&timestamp={int(time.time() * 1000)}"
    status, body = await _raw(
        server,
        "POST",
        "/api/v3/order",
        data=_signed(query),
        headers={"X-MBX-APIKEY": API_KEY, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200, body
    assert body["status"] == "FILLED" and body["executedQty"] == "0.01"
    assert body["fills"][0]["commissionAsset"] == "USD"


async def test_an_old_timestamp_is_outside_the_recv_window(server: SandboxExchangeServer) -> None:
    old = int(time.time() * 1000) - 10_000
    status, body = await _raw(
        server,
        "GET",
        "/api/v3/order?"
        + _signed(f"symbol=BTCUSD&origClientOrderId=x&timestamp={old}&recvWindow=5000"),
        headers={"X-MBX-APIKEY": API_KEY},
    )
    assert status == 400 and body["code"] == -1021


async def test_an_unknown_api_key_is_refused(server: SandboxExchangeServer) -> None:
    query = _signed(f"timestamp={int(time.time() * 1000)}")
    status, body = await _raw(
        server, "GET", "/sapi/v1/asset/tradeFee?" + query, headers={"X-MBX-APIKEY": "other"}
    )
    assert status == 401 and body["code"] == -2015


async def test_an_unknown_symbol_is_binance_1121(server: SandboxExchangeServer) -> None:
    status, body = await _raw(server, "GET", "/api/v3/ticker/price?symbol=DOGEUSD")
    assert status == 400 and body == {"code": -1121, "msg": "Invalid symbol."}


# --- error mapping through ccxt ------------------------------------------------------------------


async def test_a_wrong_secret_maps_to_a_final_auth_error(server: SandboxExchangeServer) -> None:
    client = binance_client(server, secret="wrong-secret")
    try:
        with pytest.raises(ExchangeAuthError) as caught:
            await client.market_order(
                "BTC", Side.BUY, client_order_id="c-1", quantity=Decimal("0.01")
            )
    finally:
        await client.close()
    assert not caught.value.retryable and caught.value.code == "exchange_auth"


async def test_an_unknown_order_maps_to_not_found(binance: CcxtExchange) -> None:
    with pytest.raises(OrderNotFoundError):
        await binance.fetch_order("BTC", "never-placed")


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault(503, {"code": -1008, "msg": "Server is currently overloaded."}), "exchange_down"),
        (Fault(500, {"code": -1001, "msg": "Internal error; unable to process."}), "exchange_down"),
        (Fault(429, {"code": -1003, "msg": "Too many requests."}), "rate_limited"),
        (Fault(502, {"error": "bad gateway"}), "exchange_down"),
    ],
)
async def test_5xx_and_429_are_retryable(
    server: SandboxExchangeServer, binance: CcxtExchange, fault: Fault, code: str
) -> None:
    await binance.ticker("BTC")  # markets loaded: the fault hits the call under test
    server.faults.append(fault)
    with pytest.raises(ExchangeUnavailableError) as caught:
        await binance.ticker("BTC")
    assert caught.value.retryable and caught.value.code == code


async def test_a_slow_answer_is_a_retryable_timeout(
    server: SandboxExchangeServer, binance: CcxtExchange
) -> None:
    await binance.ticker("BTC")
    server.faults.append(Fault(200, {}, delay=3.0))  # the client gives up after 2 s
    with pytest.raises(ExchangeUnavailableError) as caught:
        await binance.ticker("BTC")
    assert caught.value.retryable and caught.value.code == "provider_timeout"


async def test_the_shared_retry_rides_out_one_5xx(
    server: SandboxExchangeServer, binance: CcxtExchange
) -> None:
    await binance.ticker("BTC")
    server.faults.append(Fault(503, {"code": -1008, "msg": "Server is currently overloaded."}))
    breaker = CircuitBreaker("binance")

    async def no_wait(_: float) -> None:
        return None

    ticker = await call(
        "binance",
        lambda: binance.ticker("BTC"),
        policy=RetryPolicy(attempts=2),
        breaker=breaker,
        sleep=no_wait,
    )
    assert ticker.bid < ticker.ask
    assert breaker.failures == 0  # the success closed the count again


async def test_a_duplicate_client_order_id_returns_the_first_fill(
    server: SandboxExchangeServer, binance: CcxtExchange
) -> None:
    first = await binance.market_order(
        "ETH", Side.BUY, client_order_id="dup-1", quote_amount=Decimal("250.00")
    )
    again = await binance.market_order(
        "ETH", Side.BUY, client_order_id="dup-1", quote_amount=Decimal("250.00")
    )
    assert again.order_id == first.order_id
    assert (again.quantity, again.cost) == (first.quantity, first.cost)
    assert len(server.engine.orders) == 1


# --- market data behind PriceFeed, and routing -------------------------------------------------


async def test_the_exchange_feed_prices_now_at_the_mid_and_fails_over(
    server: SandboxExchangeServer, binance: CcxtExchange
) -> None:
    backup = venue()
    venues = Failover(
        [
            ProviderSlot("binance", binance, CircuitBreaker("binance")),
            ProviderSlot("backup", backup, CircuitBreaker("backup")),
        ],  # type: ignore[list-item]
        policy=RetryPolicy(attempts=1, timeout=5),
    )
    feed = ExchangePriceFeed(venues, history=SandboxPriceFeed())
    now = datetime.now(UTC)
    prices = await feed.prices_usd(["BTC", "USD"], now)
    book = await backup.order_book("BTC", 1)
    assert prices["USD"] == 1
    assert prices["BTC"] == ((book.bids[0][0] + book.asks[0][0]) / 2).quantize(Decimal("0.01"))
    # Binance down: the backup venue answers.
    server.faults.extend([Fault(503, {"code": -1008, "msg": "busy"})] * 3)
    assert (await feed.prices_usd(["BTC"], now))["BTC"] == prices["BTC"]
    # A past instant comes from the history feed; without one it is refused.
    past = now - timedelta(days=3)
    assert (await feed.prices_usd(["ETH"], past)) == await SandboxPriceFeed().prices_usd(
        ["ETH"], past
    )
    with pytest.raises(PriceUnavailableError):
        await ExchangePriceFeed(venues).prices_usd(["ETH"], past)


async def test_routing_picks_the_cheapest_total_and_says_why() -> None:
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    cheap_fee = SandboxExchange.venue("sandbox-binance", clock=lambda: at)
    tight_spread = SandboxExchange.venue("sandbox-coinbase", clock=lambda: at)
    venues = Failover(
        [
            ProviderSlot("sandbox-coinbase", tight_spread, CircuitBreaker("c")),
            ProviderSlot("sandbox-binance", cheap_fee, CircuitBreaker("b")),
        ]  # type: ignore[list-item]
    )
    # 1,000 USD of BTC: binance 0.10 % fee + 8 bps spread ≈ 1.80; coinbase 0.60 % + 1 bp ≈ 6.10.
    route = await best_route(venues, "BTC", Side.BUY, quote_amount=Decimal("1000.00"))
    assert route.chosen.venue == "sandbox-binance"
    costs = {c.venue: c for c in route.candidates}
    assert costs["sandbox-binance"].total < costs["sandbox-coinbase"].total
    assert costs["sandbox-binance"].fee == costs["sandbox-binance"].cost * Decimal("0.001")
    # 1,000 USD fits in the first level: only the rounding of the cost to the cent is left.
    assert costs["sandbox-binance"].slippage < Decimal("0.01")
    assert "lowest total cost on sandbox-binance" in route.reason
    assert "sandbox-coinbase" in route.reason
    # An open breaker takes a venue out of the running.
    for _ in range(5):
        venues.slots[1].breaker.record_failure()
    route = await best_route(venues, "BTC", Side.BUY, quote_amount=Decimal("1000.00"))
    assert route.chosen.venue == "sandbox-coinbase"
    assert route.skipped == {"sandbox-binance": "unhealthy"}
    # Passive health: both venues answered their market data.
    assert _gauge("sandbox-binance") == 1.0 and _gauge("sandbox-coinbase") == 1.0
    # Too big for every book: a 422, not an outage.
    with pytest.raises(TooLargeForBooksError):
        await best_route(venues, "BTC", Side.BUY, quantity=Decimal("50"))
    # Every venue down: no route (503).
    venues.slots[0].breaker.opened_at = venues.slots[1].breaker.opened_at
    venues.slots[0].breaker.failures = 5
    with pytest.raises(NoRouteError):
        await best_route(venues, "BTC", Side.BUY, quantity=Decimal("1"))


def test_venues_come_from_settings() -> None:
    venues = venue_slots(Settings(env="test"))
    assert [s.name for s in venues.slots] == ["sandbox-binance", "sandbox-coinbase"]
    configured = venue_slots(
        Settings(
            env="test",
            exchange_venues="binance,coinbase",
            exchange_binance_api_url="http://127.0.0.1:1",
        )
    )
    binance = configured.slots[0].implementation
    assert isinstance(binance, CcxtExchange) and binance.quote == "USD"
    assert binance.client.urls["api"]["private"] == "http://127.0.0.1:1/api/v3"
    coinbase = configured.slots[1].implementation
    assert isinstance(coinbase, CoinbaseExchange) and not coinbase.market_buy_by_quantity
    assert coinbase.client.urls["api"]["rest"] == "https://api.coinbase.com"
    with pytest.raises(ValueError, match="unknown exchange venues"):
        venue_slots(Settings(env="test", exchange_venues="kraken"))
    assert binance_urls("http://x")["sapi"] == "http://x/sapi/v1"


def _gauge(provider: str) -> float | None:
    return REGISTRY.get_sample_value("provider_health", {"provider": provider})


async def test_a_venue_health_probe_marks_a_down_venue_unhealthy(
    server: SandboxExchangeServer, binance: CcxtExchange
) -> None:
    venues = Failover(
        [ProviderSlot("binance-probe", binance, CircuitBreaker("binance-probe"))],  # type: ignore[list-item]
        policy=RetryPolicy(attempts=1, timeout=5),
    )
    assert await venues.check_health(venue_answers) == {"binance-probe": True}
    assert _gauge("binance-probe") == 1.0
    server.faults.extend([Fault(503, {"code": -1008, "msg": "busy"})] * 2)
    assert await venues.check_health(venue_answers) == {"binance-probe": False}
    assert _gauge("binance-probe") == 0.0
    # An unhealthy venue is skipped by routing (and reported so).
    with pytest.raises(NoRouteError) as caught:
        await best_route(venues, "BTC", Side.BUY, quote_amount=Decimal("10"))
    assert caught.value.details["skipped"] == {"binance-probe": "unhealthy"}


async def test_a_ccxt_call_leaves_the_decimal_context_alone() -> None:
    async def formats_like_ccxt() -> str:
        # What ccxt does while placing an order: it rounds half-up in the current context.
        return str(decimal_to_precision("0.125", ROUND, 2))

    before = getcontext().rounding
    assert await in_own_decimal_context(formats_like_ccxt) == "0.13"
    assert getcontext().rounding == before == ROUND_HALF_EVEN
