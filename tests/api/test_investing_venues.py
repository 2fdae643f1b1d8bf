"""Investing over HTTP, where the venues come from: the default sandbox venues, ccxt's
Binance and Coinbase adapters against their vendor-shaped servers (configured by settings),
a venue whose answer is lost (settled later by the worker), two requests racing for one
quote, and the fee service's route ranking for trades."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.db.engine import SessionFactory
from diboas.db.urls import plain_url
from diboas.investing.service import venues_for
from diboas.ledger.verify import verify_ledger
from diboas.providers.exchange import SandboxExchange
from diboas.providers.exchange_coinbase_server import CoinbaseSandboxServer, ec_key_pair
from diboas.providers.exchange_routing import VENUES_SERVICE
from diboas.providers.exchange_sandbox_server import SandboxExchangeServer
from diboas.providers.resilience import CircuitBreaker, Failover, ProviderSlot, RetryPolicy
from tests.api.conftest import Mailbox, _client, settings_for_tests
from tests.banking.helpers import API, balance, customer
from tests.investing.helpers import (
    LostAnswer,
    SetPrices,
    funded,
    investing_balance,
    model,
    services,
)

QUOTES = f"{API}/investing/quotes"
ORDERS = f"{API}/investing/orders"
PORTFOLIO = f"{API}/investing/portfolio"


@pytest.fixture
def prices() -> SetPrices:
    return SetPrices(BTC="50000", ETH="2500")


@pytest.fixture
async def client(
    database_url: URL, mailbox: tuple[Mailbox, int], prices: SetPrices
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings_for_tests(mailbox[1]),
        database_url=plain_url(database_url),
        services=services(prices),
    )
    async for c in _client(app):
        yield c


async def test_the_default_sandbox_venues_quote_and_fill(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    # What `diboas run` serves: the two in-process sandbox venues on the sandbox price feed.
    app = create_app(settings_for_tests(mailbox[1]), database_url=plain_url(database_url))
    async for default in _client(app):
        ada = await funded(default, engine, sessions, "500.00")
        order = await default.post(
            ORDERS,
            headers=ada["headers"],
            json={"side": "buy", "asset": "BTC", "amount_usd": "100.00"},
        )
        assert order.status_code == 201, order.text
        body = order.json()
        # 1 % platform fee and sandbox-binance's 0.1 % (its total beats sandbox-coinbase's 0.6 %).
        assert body["venue"] == "sandbox-binance" and body["fee"] == "1.10"
        assert {c["venue"] for c in body["route"]["candidates"]} == {
            "sandbox-binance",
            "sandbox-coinbase",
        }
        assert await balance(engine, ada["id"]) == Decimal("398.90")
        assert Decimal(body["quantity"]) > 0


async def test_two_requests_racing_for_one_quote_trade_it_once(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await funded(client, engine, sessions, "300.00")
    quote = (
        await client.post(
            QUOTES,
            headers=ada["headers"],
            json={"side": "buy", "asset": "BTC", "amount_usd": "100.00"},
        )
    ).json()
    body = {"side": "buy", "asset": "BTC", "amount_usd": "100.00", "quote_id": quote["quote_id"]}
    first, second = await asyncio.gather(
        client.post(ORDERS, headers=ada["headers"], json=body),
        client.post(ORDERS, headers=ada["headers"], json=body),
    )
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    assert await balance(engine, ada["id"]) == Decimal("198.90")  # 300 − 100 − 1.00 − 0.10
    assert await investing_balance(engine, ada["id"]) == Decimal("0.002")


@pytest.mark.parametrize("vendor", ["binance", "coinbase"])
async def test_trading_through_ccxt_against_the_vendor_shaped_servers(
    database_url: URL,
    mailbox: tuple[Mailbox, int],
    engine: AsyncEngine,
    sessions: SessionFactory,
    vendor: str,
) -> None:
    # The settings path a deployment uses: the venue through ccxt, its API URL pointed at the
    # vendor-shaped sandbox server, signed with the configured credentials.
    server: SandboxExchangeServer | CoinbaseSandboxServer
    if vendor == "binance":
        server = SandboxExchangeServer(SandboxExchange.venue("sandbox-binance"), "k-1", "s-1")
        credentials = {
            "exchange_binance_api_key": "k-1",
            "exchange_binance_secret": "s-1",
        }
    else:
        private_pem, public_pem = ec_key_pair()
        name = "organizations/o/apiKeys/k"
        server = CoinbaseSandboxServer(SandboxExchange.venue("sandbox-coinbase"), name, public_pem)
        credentials = {
            "exchange_coinbase_api_key": name,
            "exchange_coinbase_secret": private_pem,
        }
    await server.start()
    settings = settings_for_tests(
        mailbox[1],
        exchange_venues=vendor,
        **{f"exchange_{vendor}_api_url": server.base_url, **credentials},
    )
    app = create_app(settings, database_url=plain_url(database_url))
    try:
        async for through_ccxt in _client(app):
            ada = await funded(through_ccxt, engine, sessions, "500.00")
            bought = await through_ccxt.post(
                ORDERS,
                headers=ada["headers"],
                json={"side": "buy", "asset": "ETH", "quantity": "0.05"},
            )
            assert bought.status_code == 201, bought.text
            assert bought.json()["venue"] == vendor
            assert bought.json()["quantity"] == "0.050000000000000000"
            sold = await through_ccxt.post(
                ORDERS,
                headers=ada["headers"],
                json={"side": "sell", "asset": "ETH", "quantity": "0.02"},
            )
            assert sold.status_code == 201, sold.text
            # The user holds exactly what was bought less what was sold, whatever the venue
            # filled (Coinbase buys by amount: its fill is the platform's to reconcile).
            assert await investing_balance(engine, ada["id"], "ETH") == Decimal("0.03")
            await venues_for(app.state.services, settings).slots[0].implementation.close()
    finally:
        await server.stop()
    assert len(server.engine.orders) == 2
    async with engine.connect() as conn:
        report = await verify_ledger(conn)
    assert report.ok, report.summary()


async def test_the_fee_service_quotes_a_trade_on_the_cheapest_route(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada = await customer(client, engine)
    response = await client.post(
        f"{API}/fees/quote",
        headers=ada["headers"],
        json={"operation": "buy", "amount": "1000.00", "currency": "USD", "trade_asset": "BTC"},
    )
    assert response.status_code == 201, response.text
    quote = response.json()
    assert quote["total_fee"] == "11.00"
    assert quote["breakdown"] == {"platform": "10.00", "provider": "1.00", "network": "0.00"}
    assert quote["provider"] == "cheap" and quote["route"]["provider"] == "cheap"
    assert quote["route"]["reason"].startswith("lowest total cost on cheap: 1.00 USD")
    assert "dear 6.00 USD" in quote["route"]["reason"]
    for bad in (
        {"operation": "deposit", "amount": "10.00", "currency": "USD", "trade_asset": "BTC"},
        {"operation": "buy", "amount": "10.00", "currency": "USD", "trade_asset": "DOGE"},
        {"operation": "sell", "amount": "10.00", "currency": "EUR", "trade_asset": "BTC"},
    ):
        refused = await client.post(f"{API}/fees/quote", headers=ada["headers"], json=bad)
        assert refused.status_code == 422, (bad, refused.text)


async def test_a_lost_venue_answer_is_settled_by_the_worker(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    # The venue fills the order but its answer is lost: 503 to the caller, the money stays
    # held, and the in-process worker's investing.reconcile_quote settles what the venue did.
    prices = SetPrices(BTC="40000")
    inner = SandboxExchange(name="cheap", model=model("0.001"), feed=prices)
    lossy = Failover(
        [ProviderSlot("cheap", LostAnswer(inner, place=True), CircuitBreaker("lossy"))],  # type: ignore[list-item]
        policy=RetryPolicy(attempts=1, timeout=5),
    )
    app = create_app(
        settings_for_tests(mailbox[1], investing_reconcile_delay_seconds=0),
        database_url=plain_url(database_url),
        services={**services(prices), VENUES_SERVICE: lossy},
    )
    async for lost in _client(app):
        ada = await funded(lost, engine, sessions, "1000.00")
        response = await lost.post(
            ORDERS, headers=ada["headers"], json={"side": "buy", "asset": "BTC", "quantity": "0.01"}
        )
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "exchange_unavailable"
        deadline = time.monotonic() + 30
        while await investing_balance(engine, ada["id"]) == 0:
            assert time.monotonic() < deadline, "the reconcile job did not settle the order"
            await asyncio.sleep(0.1)
        # 400.00 + 4.00 platform + 0.40 venue fee, captured from the hold.
        assert await investing_balance(engine, ada["id"]) == Decimal("0.01")
        assert await balance(engine, ada["id"]) == Decimal("595.60")
        assert await balance(engine, ada["id"], "held") == Decimal(0)
        history = (await lost.get(f"{API}/transactions", headers=ada["headers"])).json()["items"]
        assert [(t["type"], t["status"]) for t in history] == [("buy", "completed")]
        # The 503 named the quote; the quote now names the trade's transaction.
        quote_id = response.json()["error"]["details"]["quote_id"]
        quote = (await lost.get(f"{QUOTES}/{quote_id}", headers=ada["headers"])).json()
        assert quote["status"] == "executed" and quote["transaction_id"] == history[0]["id"]
    assert len(inner.orders) == 1
