"""Investing over HTTP, on a real PostgreSQL, with venues whose prices the test sets (no
spread: the first level of each book is the price), so every figure below is worked out by
hand. Fee schedule: 1 % platform fee (at least 0.99); the venue's taker fee on top (the cheap
venue's 0.1 % — routing picks it over the dear venue's 0.6 %)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.db.engine import SessionFactory
from diboas.db.urls import plain_url
from diboas.ledger.verify import verify_ledger
from tests.api.conftest import Mailbox, _client, settings_for_tests
from tests.banking.helpers import API, balance, customer, transaction_count
from tests.investing.helpers import SetPrices, funded, investing_balance, services

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


async def test_buy_by_usd_and_by_quantity_sell_part_portfolio_history_balances(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory, prices: SetPrices
) -> None:
    ada = await funded(client, engine, sessions, "2000.00")
    headers = ada["headers"]

    # A quote for 1,000 USD of BTC at 50,000: 0.02 BTC; fee 10.00 platform + 1.00 venue.
    quoted = await client.post(
        QUOTES, headers=headers, json={"side": "buy", "asset": "BTC", "amount_usd": "1000.00"}
    )
    assert quoted.status_code == 201, quoted.text
    quote = quoted.json()
    assert (quote["quantity"], quote["price"], quote["amount_usd"]) == (
        "0.02000000",
        "50000.00",
        "1000.00",
    )
    assert quote["fee"] == "11.00" and quote["total_usd"] == "1011.00"
    assert quote["fee_breakdown"] == {"platform": "10.00", "provider": "1.00", "network": "0.00"}
    assert quote["route"]["provider"] == "cheap"
    assert quote["route"]["reason"].startswith("lowest total cost on cheap: 1.00 USD")
    assert {c["venue"]: c["total"] for c in quote["route"]["candidates"]} == {
        "cheap": "1.00",
        "dear": "6.00",
    }
    # The money is reserved while the quote stands.
    assert await balance(engine, ada["id"]) == Decimal("989.00")
    assert await balance(engine, ada["id"], "held") == Decimal("1011.00")

    body = {"side": "buy", "asset": "BTC", "amount_usd": "1000.00", "quote_id": quote["quote_id"]}
    key = {**headers, "Idempotency-Key": f"buy-{uuid.uuid4()}"}
    bought = await client.post(ORDERS, headers=key, json=body)
    assert bought.status_code == 201, bought.text
    order = bought.json()
    assert order["status"] == "completed" and order["fee"] == "11.00"
    assert order["quantity"] == "0.02000000" and order["venue"] == "cheap"
    assert uuid.UUID(order["id"]).version == 7 and order["order_id"] != order["id"]
    replay = await client.post(ORDERS, headers=key, json=body)
    assert replay.status_code == 201 and replay.json() == order
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert await balance(engine, ada["id"]) == Decimal("989.00")
    assert await balance(engine, ada["id"], "held") == Decimal(0)
    assert await investing_balance(engine, ada["id"]) == Decimal("0.02")

    # 0.01 BTC at 60,000 without a quote: 600.00 + 6.00 + 0.60.
    prices.set(BTC="60000")
    by_quantity = await client.post(
        ORDERS, headers=headers, json={"side": "buy", "asset": "BTC", "quantity": "0.01"}
    )
    assert by_quantity.status_code == 201, by_quantity.text
    assert by_quantity.json()["amount_usd"] == "600.00"
    assert by_quantity.json()["fee"] == "6.60"
    assert await balance(engine, ada["id"]) == Decimal("382.40")

    # Sell 0.025 BTC at 70,000: 1,750.00 less 17.50 + 1.75; the holding drops by exactly 0.025.
    prices.set(BTC="70000")
    sold = await client.post(
        ORDERS, headers=headers, json={"side": "sell", "asset": "BTC", "quantity": "0.025"}
    )
    assert sold.status_code == 201, sold.text
    assert sold.json()["fee"] == "19.25" and sold.json()["total_usd"] == "1730.75"
    assert await investing_balance(engine, ada["id"]) == Decimal("0.005")
    assert await balance(engine, ada["id"]) == Decimal("2113.15")

    # FIFO: the sale used the first lot (0.02 for 1,011.00) and half the second (0.005 of
    # 0.01 for 606.60 → 303.30); proceeds 1,730.75 shared 4:1 → 1,384.60 and 346.15.
    # Realised: 373.60 + 42.85. Left: 0.005 BTC costing 303.30, worth 350.00 at 70,000.
    folio = await client.get(PORTFOLIO, headers=headers)
    assert folio.status_code == 200, folio.text
    assert folio.headers["Cache-Control"] == "no-store"
    [btc] = folio.json()["holdings"]
    assert btc.pop("price_stale") is False and btc.pop("priced_at") is not None
    assert btc == {
        "asset": "BTC",
        "quantity": "0.00500000",
        "cost_basis": "303.30",
        "average_cost": "60660.00",
        "price": "70000.00",
        "value_usd": "350.00",
        "unrealised_pnl": "46.70",
        "realised_pnl": "416.45",
    }
    assert folio.json()["realised_pnl"] == "416.45"

    history = (await client.get(f"{API}/transactions", headers=headers)).json()["items"]
    trades = [(t["type"], t["domain"], t["amount"], t["fee"]) for t in history[:3]]
    assert trades == [
        ("sell", "investing", "1750.00", "19.25"),
        ("buy", "investing", "600.00", "6.60"),
        ("buy", "investing", "1000.00", "11.00"),
    ]
    one = await client.get(f"{API}/transactions/{order['id']}", headers=headers)
    assert one.status_code == 200 and one.json()["status"] == "completed"

    balances = (await client.get(f"{API}/balances", headers=headers)).json()
    assert balances["domains"]["investing"]["total_usd"] == "350.00"
    assert balances["domains"]["banking"]["total_usd"] == "2113.15"
    [btc_line] = [a for a in balances["assets"] if a["domain"] == "investing"]
    assert (btc_line["asset"], btc_line["available"], btc_line["value_usd"]) == (
        "BTC",
        "0.00500000",
        "350.00",
    )

    async with engine.connect() as conn:
        report = await verify_ledger(conn)
    assert report.ok, report.summary()


async def test_an_expired_quote_is_refused_and_its_money_released(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await funded(client, engine, sessions, "500.00")
    quote = (
        await client.post(
            QUOTES, headers=ada["headers"], json={"side": "buy", "asset": "ETH", "quantity": "0.1"}
        )
    ).json()
    assert await balance(engine, ada["id"], "held") == Decimal("252.75")  # 250 + 2.50 + 0.25
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE investing_quotes SET expires_at = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": quote["quote_id"]},
        )
    refused = await client.post(
        ORDERS,
        headers=ada["headers"],
        json={"side": "buy", "asset": "ETH", "quantity": "0.1", "quote_id": quote["quote_id"]},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "quote_expired"
    assert await balance(engine, ada["id"]) == Decimal("500.00")
    assert await balance(engine, ada["id"], "held") == Decimal(0)
    again = await client.get(f"{QUOTES}/{quote['quote_id']}", headers=ada["headers"])
    assert again.json()["status"] == "expired"
    assert await investing_balance(engine, ada["id"], "ETH") == 0


async def test_insufficient_funds_and_venue_refusals_change_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await funded(client, engine, sessions, "100.00")
    before = await transaction_count(engine, ada["id"])
    poor = await client.post(
        ORDERS, headers=ada["headers"], json={"side": "buy", "asset": "BTC", "amount_usd": "500.00"}
    )
    assert poor.status_code == 422 and poor.json()["error"]["code"] == "insufficient_funds"
    # Documented sandbox magic: a quantity ending in 66 lots is refused by the venue.
    closed = await client.post(
        ORDERS,
        headers=ada["headers"],
        json={"side": "buy", "asset": "BTC", "quantity": "0.00000066"},
    )
    assert closed.status_code == 422 and closed.json()["error"]["code"] == "order_rejected"
    # More than every book holds.
    huge = await client.post(
        QUOTES, headers=ada["headers"], json={"side": "buy", "asset": "BTC", "quantity": "50"}
    )
    assert huge.status_code == 422 and huge.json()["error"]["code"] == "insufficient_liquidity"
    # Selling what you do not have.
    short = await client.post(
        ORDERS, headers=ada["headers"], json={"side": "sell", "asset": "BTC", "quantity": "0.001"}
    )
    assert short.status_code == 422 and short.json()["error"]["code"] == "insufficient_funds"
    assert await balance(engine, ada["id"]) == Decimal("100.00")
    assert await balance(engine, ada["id"], "held") == Decimal(0)
    assert await transaction_count(engine, ada["id"]) == before


@pytest.mark.parametrize(
    "body",
    [
        {"side": "buy", "asset": "BTC", "amount_usd": 100},
        {"side": "buy", "asset": "BTC", "amount_usd": "1e3"},
        {"side": "buy", "asset": "BTC", "amount_usd": "10.001"},
        {"side": "buy", "asset": "BTC", "amount_usd": "0"},
        {"side": "buy", "asset": "BTC", "amount_usd": "-5.00"},
        {"side": "buy", "asset": "BTC", "quantity": "0.000000001"},
        {"side": "buy", "asset": "BTC"},
        {"side": "buy", "asset": "BTC", "amount_usd": "10.00", "quantity": "0.1"},
        {"side": "sell", "asset": "BTC", "amount_usd": "10.00"},
        {"side": "hold", "asset": "BTC", "amount_usd": "10.00"},
        {"side": "buy", "asset": "DOGE", "amount_usd": "10.00"},
        {"side": "buy", "asset": "BT\u0000C", "amount_usd": "10.00"},
        {"side": "buy", "amount_usd": "10.00"},
        {"side": "buy", "asset": "BTC", "amount_usd": "10.00", "price": "1"},
        {"side": "buy", "asset": "BTC", "amount_usd": "10.00", "quote_id": "not-a-uuid"},
    ],
)
async def test_bad_inputs_are_422_in_the_error_format_and_change_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory, body: dict[str, Any]
) -> None:
    ada = await funded(client, engine, sessions, "100.00")
    for path in (ORDERS, QUOTES):
        if path == QUOTES and "quote_id" in body:
            continue
        response = await client.post(path, headers=ada["headers"], json=body)
        assert response.status_code == 422, (path, response.text)
        error = response.json()["error"]
        assert error["code"] and error["message"] and "request_id" in error
    assert await balance(engine, ada["id"]) == Decimal("100.00")
    assert await balance(engine, ada["id"], "held") == Decimal(0)
    assert await transaction_count(engine, ada["id"]) == 0


async def test_another_users_quote_and_order_are_404(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await funded(client, engine, sessions, "300.00")
    bob = await funded(client, engine, sessions, "300.00")
    quote = (
        await client.post(
            QUOTES,
            headers=ada["headers"],
            json={"side": "buy", "asset": "BTC", "amount_usd": "50.00"},
        )
    ).json()
    assert (
        await client.get(f"{QUOTES}/{quote['quote_id']}", headers=bob["headers"])
    ).status_code == 404
    stolen = await client.post(
        ORDERS,
        headers=bob["headers"],
        json={"side": "buy", "asset": "BTC", "amount_usd": "50.00", "quote_id": quote["quote_id"]},
    )
    assert stolen.status_code == 404
    assert await balance(engine, bob["id"]) == Decimal("300.00")
    order = (
        await client.post(
            ORDERS,
            headers=ada["headers"],
            json={
                "side": "buy",
                "asset": "BTC",
                "amount_usd": "50.00",
                "quote_id": quote["quote_id"],
            },
        )
    ).json()
    mine = await client.get(f"{ORDERS}/{order['order_id']}", headers=ada["headers"])
    assert mine.status_code == 200 and mine.json()["id"] == order["id"]
    theirs = await client.get(f"{ORDERS}/{order['order_id']}", headers=bob["headers"])
    assert theirs.status_code == 404
    # A used quote cannot be used again.
    twice = await client.post(
        ORDERS,
        headers=ada["headers"],
        json={"side": "buy", "asset": "BTC", "amount_usd": "50.00", "quote_id": quote["quote_id"]},
    )
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "quote_used"


async def test_a_quote_for_another_trade_is_a_mismatch(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await funded(client, engine, sessions, "300.00")
    quote = (
        await client.post(
            QUOTES,
            headers=ada["headers"],
            json={"side": "buy", "asset": "BTC", "amount_usd": "50.00"},
        )
    ).json()
    response = await client.post(
        ORDERS,
        headers=ada["headers"],
        json={"side": "buy", "asset": "BTC", "amount_usd": "60.00", "quote_id": quote["quote_id"]},
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "quote_mismatch"


async def test_tier_0_cannot_trade(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    nobody = await customer(client, engine, tier=0)
    response = await client.post(
        QUOTES,
        headers=nobody["headers"],
        json={"side": "buy", "asset": "BTC", "amount_usd": "10.00"},
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "kyc_required"
