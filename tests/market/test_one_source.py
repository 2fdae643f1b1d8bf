"""One source of truth for prices, and never a stale one passed off as current.

The app's price service reads the same exchange venues the quotes are priced on, so the
market price, a quote, the unified balance and the portfolio agree. Market data older than
``DIBOAS_MARKET_MAX_PRICE_AGE_SECONDS`` never prices a quote (503 ``market_data_stale``,
nothing held or stored) and a balance valued with it is marked ``price_stale``. The faults are
real venue behaviour: a venue whose books carry an old timestamp, and one that stops answering.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from diboas.api.app import create_app
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.db.urls import plain_url
from diboas.ledger import service as ledger
from diboas.ledger.models import AccountKind, Domain, OwnerType
from diboas.market.prices import PRICES_SERVICE, PriceService, exchange_feed
from diboas.providers.exchange import (
    ExchangeUnavailableError,
    OrderBook,
    SandboxExchange,
    VenueModel,
)
from diboas.providers.exchange_feed import ExchangePriceFeed
from diboas.providers.exchange_routing import VENUES_SERVICE
from diboas.providers.resilience import CircuitBreaker, Failover, ProviderSlot, RetryPolicy
from tests.api.conftest import Mailbox, _client, settings_for_tests
from tests.banking.helpers import API, balance, fund
from tests.investing.helpers import SetPrices, funded, model, venues
from tests.orchestration.conftest import assert_ledger_clean
from tests.web.helpers import web_sign_up

QUOTES = f"{API}/investing/quotes"
ORDERS = f"{API}/investing/orders"


@asynccontextmanager
async def app_client(
    database_url: URL, smtp_port: int, services: dict[str, Any], **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    app = create_app(
        settings_for_tests(smtp_port, **overrides),
        database_url=plain_url(database_url),
        services=services,
    )
    async for client in _client(app):
        yield client, app.state.services


@dataclass
class Faulty(SandboxExchange):
    """A sandbox venue that can be made to answer with books dated ``lag`` ago (a feed stuck
    on old data), or not at all (``down``)."""

    lag: timedelta = timedelta(0)
    down: bool = False

    async def order_book(self, asset: str, depth: int = 20) -> OrderBook:
        if self.down:
            raise ExchangeUnavailableError("connection refused", provider=self.name)
        book = await super().order_book(asset, depth)
        return OrderBook(book.exchange, book.asset, book.bids, book.asks, book.at - self.lag)


def faulty_venues(feed: SetPrices) -> tuple[Faulty, Failover[Any]]:
    feed.set(ETH="2500")  # the venue trades both
    venue = Faulty(name="cheap", model=model("0.001"), feed=feed)
    slots = [ProviderSlot("cheap", venue, CircuitBreaker("faulty-cheap"))]
    return venue, Failover(slots, policy=RetryPolicy(attempts=1, base_delay=0, timeout=5))


async def credit_btc(sessions: SessionFactory, user_id: uuid.UUID, quantity: str) -> None:
    """Put BTC in a user's investing account (from the platform's external account)."""

    async def work(session: AsyncSession) -> None:
        account = await ledger.customer_account(
            session,
            owner_type=OwnerType.USER,
            owner_id=user_id,
            domain=Domain.INVESTING,
            asset="BTC",
        )
        external = await ledger.platform_account(session, asset="BTC", kind=AccountKind.EXTERNAL)
        await ledger.transfer(
            session, source=external, destination=account, amount=Decimal(quantity), kind="test"
        )

    await run_in_transaction(sessions, work)


async def quote_rows(engine: AsyncEngine, user_id: uuid.UUID) -> int:
    async with engine.connect() as conn:
        query = text("SELECT count(*) FROM investing_quotes WHERE user_id = :id")
        return int((await conn.execute(query, {"id": user_id})).scalar_one())


async def test_balance_portfolio_and_quotes_price_from_the_same_venues(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    # Only venues are handed in: the app's price service is built on them, not on a table.
    prices = SetPrices(BTC="50000", ETH="2500")
    services: dict[str, Any] = {VENUES_SERVICE: venues(prices)}
    async with app_client(database_url, mailbox[1], services) as (client, app_services):
        ada = await funded(client, engine, sessions, "2000.00")
        headers = ada["headers"]
        bought = await client.post(
            ORDERS, headers=headers, json={"side": "buy", "asset": "BTC", "quantity": "0.02"}
        )
        assert bought.status_code == 201, bought.text
        listed = await client.get(f"{API}/market/prices", headers=headers)
        market = {p["asset"]: p for p in listed.json()}
        service = app_services[PRICES_SERVICE]
        assert isinstance(service.feed, ExchangePriceFeed)
        assert service.feed.venues is services[VENUES_SERVICE]
        assert market["BTC"]["price_usd"] == "50000.00" == bought.json()["price"]
        assert market["BTC"]["stale"] is False

        body = (await client.get(f"{API}/balances", headers=headers)).json()
        [btc] = [a for a in body["assets"] if a["asset"] == "BTC"]
        folio = (await client.get(f"{API}/investing/portfolio", headers=headers)).json()
        [holding] = folio["holdings"]
        # 0.02 BTC at the venues' 50,000: the same 1,000.00 everywhere.
        assert btc["value_usd"] == holding["value_usd"] == "1000.00"
        assert holding["price"] == market["BTC"]["price_usd"]
        assert btc["price_stale"] is False and body["price_stale"] is False

        # The venues move; after the price cache (a few seconds), everything follows them.
        prices.set(BTC="51000")
        service.cache_seconds = 0
        quote = await client.post(
            QUOTES, headers=headers, json={"side": "sell", "asset": "BTC", "quantity": "0.01"}
        )
        assert quote.status_code == 201, quote.text
        body = (await client.get(f"{API}/balances", headers=headers)).json()
        folio = (await client.get(f"{API}/investing/portfolio", headers=headers)).json()
        [btc] = [a for a in body["assets"] if a["asset"] == "BTC"]
        assert quote.json()["price"] == folio["holdings"][0]["price"] == "51000.00"
        assert btc["value_usd"] == folio["holdings"][0]["value_usd"] == "1020.00"


async def fee_quote_rows(engine: AsyncEngine, user_id: uuid.UUID) -> int:
    async with engine.connect() as conn:
        query = text("SELECT count(*) FROM fee_quotes WHERE user_id = :u")
        return int((await conn.execute(query, {"u": user_id})).scalar_one())


async def test_a_quote_from_old_market_data_is_refused_and_changes_nothing(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    prices = SetPrices(BTC="50000")
    venue, failover = faulty_venues(prices)
    services: dict[str, Any] = {VENUES_SERVICE: failover}
    overrides = {"market_max_price_age_seconds": 30}
    async with app_client(database_url, mailbox[1], services, **overrides) as (client, _):
        ada = await funded(client, engine, sessions, "1000.00")
        headers = ada["headers"]
        venue.lag = timedelta(minutes=5)  # the venue answers, with a five-minute-old book
        trade = {"side": "buy", "asset": "BTC", "amount_usd": "100.00"}
        for path in (QUOTES, ORDERS):
            refused = await client.post(path, headers=headers, json=trade)
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert error["code"] == "market_data_stale"
            assert error["details"]["skipped"] == {"cheap": "stale market data"}
            assert error["details"]["max_age_seconds"] == "30"
        # The Fee service's cheapest route for a trade is not priced from it either.
        fee = await client.post(
            f"{API}/fees/quote",
            headers=headers,
            json={"operation": "buy", "amount": "100.00", "currency": "USD", "trade_asset": "BTC"},
        )
        assert fee.status_code == 503 and fee.json()["error"]["code"] == "market_data_stale"
        assert await fee_quote_rows(engine, ada["id"]) == 0
        assert await balance(engine, ada["id"]) == Decimal("1000.00")
        assert await balance(engine, ada["id"], "held") == 0
        assert await quote_rows(engine, ada["id"]) == 0

        venue.lag = timedelta(seconds=5)  # within the allowed age: quoted as usual
        fresh = await client.post(QUOTES, headers=headers, json=trade)
        assert fresh.status_code == 201, fresh.text
        await assert_ledger_clean(engine)


async def test_balance_valued_from_a_stale_feed_says_so(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    prices = SetPrices(BTC="50000")
    venue, failover = faulty_venues(prices)
    services: dict[str, Any] = {VENUES_SERVICE: failover}
    async with app_client(database_url, mailbox[1], services) as (client, app_services):
        ada = await funded(client, engine, sessions, "10.00")
        await credit_btc(sessions, ada["id"], "0.01")
        venue.lag = timedelta(minutes=10)  # the ticker the feed reads is ten minutes old
        response = await client.get(f"{API}/balances", headers=ada["headers"])
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["price_stale"] is True
        rows = {a["asset"]: a for a in body["assets"]}
        assert rows["BTC"]["price_stale"] is True and rows["BTC"]["value_usd"] == "500.00"
        observed = datetime.fromisoformat(rows["BTC"]["priced_at"])
        assert datetime.now(UTC) - observed >= timedelta(minutes=10)
        assert rows["USD"]["price_stale"] is False  # USD is never stale: it is the unit
        assert app_services[PRICES_SERVICE].max_age == timedelta(seconds=60)
        folio = (await client.get(f"{API}/investing/portfolio", headers=ada["headers"])).json()
        assert folio["price_stale"] is True and folio["holdings"][0]["price_stale"] is True


async def test_the_web_dashboard_marks_values_from_a_stale_feed(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    prices = SetPrices(BTC="50000")
    venue, failover = faulty_venues(prices)
    async with app_client(database_url, mailbox[1], {VENUES_SERVICE: failover}) as (client, _):
        email = await web_sign_up(client)
        async with engine.connect() as conn:
            found = await conn.execute(text("SELECT id FROM users WHERE email = :e"), {"e": email})
            user_id = uuid.UUID(str(found.scalar_one()))
        await credit_btc(sessions, user_id, "0.01")
        await fund(sessions, user_id, "10.00")
        venue.lag = timedelta(minutes=10)  # the ticker the feed reads is ten minutes old
        stale = await client.get("/app")
        assert stale.status_code == 200
        assert 'data-testid="price-stale"' in stale.text
        # BTC's value is marked with when its price was seen; USD (the unit) never is.
        assert '$500.00 <span class="muted">(last known,' in stale.text
        assert stale.text.count("(last known,") == 1


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


async def test_a_feed_that_stops_answering_serves_its_last_prices_marked_stale() -> None:
    prices = SetPrices(BTC="50000")
    venue, failover = faulty_venues(prices)
    clock = Clock()
    service = PriceService(
        exchange_feed({VENUES_SERVICE: failover}, settings_for_tests(25)),
        cache_seconds=0,
        clock=clock,
        max_age=timedelta(seconds=60),
    )
    first = await service.valuation(["BTC", "USD"])
    assert first.prices["BTC"] == Decimal("50000.00") and not first.stale
    seen = first.priced_at["BTC"]

    venue.down = True  # the venue stops answering
    prices.set(BTC="99999")  # (what it would say now is never seen)
    clock.at += timedelta(seconds=30)
    still = await service.valuation(["BTC"])
    assert still.prices["BTC"] == Decimal("50000.00") and still.priced_at["BTC"] == seen
    assert not still.stale  # 30 s old: within the allowed age
    clock.at += timedelta(seconds=60)
    old = await service.valuation(["BTC"])
    assert old.stale == frozenset({"BTC"}) and old.priced_at["BTC"] == seen

    venue.down = False  # back: fresh prices, no longer stale
    clock.at = datetime.now(UTC)
    back = await service.valuation(["BTC"])
    assert back.prices["BTC"] == Decimal("99999.00") and not back.stale


async def test_each_asset_is_priced_by_a_venue_that_trades_it() -> None:
    prices = SetPrices(BTC="50000", ETH="2500")
    btc_only = SandboxExchange(
        name="btc-only",
        model=VenueModel(
            half_spread=Decimal(0),
            level_step=Decimal("0.001"),
            levels=2,
            level_quantity={"BTC": Decimal(1)},
            taker_fee=Decimal("0.001"),
        ),
        feed=prices,
    )
    both = SandboxExchange(name="both", model=model("0.001"), feed=prices)
    failover = Failover(
        [
            ProviderSlot("btc-only", btc_only, CircuitBreaker("btc-only")),
            ProviderSlot("both", both, CircuitBreaker("both")),
        ],
        policy=RetryPolicy(attempts=1, base_delay=0, timeout=5),
    )
    feed = ExchangePriceFeed(failover)
    found = await feed.prices_usd(["BTC", "ETH", "USDC"], datetime.now(UTC))
    assert found == {"BTC": Decimal("50000.00"), "ETH": Decimal("2500.00"), "USDC": Decimal(1)}
