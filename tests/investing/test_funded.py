"""Deposit-then-buy as one request (``funding`` on ``POST /investing/orders``): a card or ACH
deposit pays for a crypto purchase made once it settles — within the stated price bound and
fee — or the purchase is compensated and the deposit stays in the banking balance, saying so.

Venues have no spread (``tests.investing.helpers``): at 50,000 USD a 100.00 USD buy is
0.002 BTC, fee 1.00 platform (1 %) + 0.10 venue (0.1 %). The success runs end to end on the
in-process worker; the failures run the jobs by hand (no worker) so the price can move
between the request and the buy.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import ROUND_DOWN, Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.banking import tasks as banking_tasks
from diboas.db.engine import SessionFactory
from diboas.db.urls import plain_url
from diboas.investing import tasks as investing_tasks
from diboas.investing.service.quotes import LOT
from diboas.orchestration.jobs import JobContext
from diboas.providers.exchange import SandboxExchange
from diboas.providers.exchange_routing import VENUES_SERVICE
from diboas.providers.resilience import CircuitBreaker, Failover, ProviderSlot, RetryPolicy
from tests.api.conftest import Mailbox, _client, settings_for_tests
from tests.banking.helpers import API, balance, customer, transaction_count
from tests.investing.helpers import (
    LostAnswer,
    SetPrices,
    investing_balance,
    model,
    services,
)
from tests.orchestration.conftest import assert_ledger_clean

ORDERS = f"{API}/investing/orders"
BUY = {"side": "buy", "asset": "BTC", "amount_usd": "100.00", "funding": {"method": "card"}}


@asynccontextmanager
async def funded_app(
    database_url: URL, smtp_port: int, prices: SetPrices, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    values: dict[str, Any] = {"investing_funding_poll_seconds": 0.2}
    values.update(overrides)
    app = create_app(
        settings_for_tests(smtp_port, **values),
        database_url=plain_url(database_url),
        services=services(prices),
    )
    async for client in _client(app):
        yield client, app


async def settled(
    client: httpx.AsyncClient, headers: dict[str, str], transaction_id: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        response = await client.get(f"{API}/transactions/{transaction_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("completed", "failed"):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"transaction still {body['status']}: {body}")
        await asyncio.sleep(0.1)


async def run_jobs(app: FastAPI, sessions: SessionFactory, body: dict[str, Any]) -> None:
    """What the worker would do: settle the deposit, then the funded buy's job."""
    context = JobContext(sessions, app.state.settings, 0, app.state.services)
    await banking_tasks.deposit_settle(context, {"transaction_id": body["funding_transaction_id"]})
    await investing_tasks.fund_buy(context, {"transaction_id": body["id"]})


async def quote_count(engine: AsyncEngine, user_id: uuid.UUID) -> int:
    async with engine.connect() as conn:
        query = text("SELECT count(*) FROM investing_quotes WHERE user_id = :id")
        return int((await conn.execute(query, {"id": user_id})).scalar_one())


def price_buying_66_lots(amount: Decimal) -> Decimal:
    """The lowest price from 50,000.01 up at which ``amount`` buys a quantity ending in 66
    lots (whole lots, rounded down, as the venue fills a buy by amount)."""
    price = Decimal("50000.01")
    while str((amount / price).quantize(LOT, rounding=ROUND_DOWN))[-2:] != "66":
        price += Decimal("0.01")
    return price


def states(body: dict[str, Any]) -> list[str]:
    return [step["state"] for step in body["steps"]]


async def test_a_card_deposit_pays_for_a_bitcoin_purchase(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine
) -> None:
    prices = SetPrices(BTC="50000", ETH="2500")
    async with funded_app(database_url, mailbox[1], prices) as (client, _):
        ada = await customer(client, engine)  # nothing in banking
        headers = {**ada["headers"], "Idempotency-Key": "deposit-then-buy-1"}
        response = await client.post(ORDERS, headers=headers, json=BUY)
        assert response.status_code == 201, response.text
        body = response.json()
        assert (body["status"], body["type"], body["asset"]) == ("pending", "buy", "BTC")
        assert (body["fee"], body["reference_price"], body["max_price"]) == (
            "1.10",
            "50000.00",
            "50500.00",  # 100 bps above, the default bound
        )
        assert body["estimated_quantity"] == "0.00200000"
        # A replay answers the first response and makes nothing new.
        again = await client.post(ORDERS, headers=headers, json=BUY)
        assert again.status_code == 201 and again.json() == body
        assert again.headers["Idempotent-Replayed"] == "true"

        done = await settled(client, headers, body["id"])
        assert done["status"] == "completed", done
        assert states(done) == ["accepted", "provider_requested", "provider_requested", "settled"]
        assert done["steps"][1]["detail"]["funding"] == body["funding_transaction_id"]
        assert done["related_transaction_id"] == body["funding_transaction_id"]
        assert done["fee"] == "1.10" and done["quote_id"] is not None
        assert done["fee_breakdown"] == {"platform": "1.00", "provider": "0.10", "network": "0.00"}

        history = (await client.get(f"{API}/transactions", headers=headers)).json()["items"]
        assert sorted(t["type"] for t in history) == ["buy", "deposit"]  # one buy row, not two
        deposit = next(t for t in history if t["type"] == "deposit")
        assert deposit["status"] == "completed" and deposit["amount"] == body["deposit_amount"]
        left = Decimal(deposit["amount"]) - Decimal(deposit["fee"]) - Decimal("101.10")
        assert Decimal(0) <= left <= Decimal("0.02")
        assert await balance(engine, ada["id"]) == left
        assert await balance(engine, ada["id"], "held") == 0
        assert await investing_balance(engine, ada["id"]) == Decimal("0.002")
        folio = (await client.get(f"{API}/investing/portfolio", headers=headers)).json()
        assert folio["holdings"][0]["cost_basis"] == "101.10"
        await assert_ledger_clean(engine)


async def test_a_price_above_the_bound_is_compensated_and_the_deposit_stays(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    prices = SetPrices(BTC="50000", ETH="2500")
    async with funded_app(database_url, mailbox[1], prices, run_worker_in_process=False) as (
        client,
        app,
    ):
        ada = await customer(client, engine)
        headers = ada["headers"]
        response = await client.post(ORDERS, headers=headers, json={**BUY, "max_slippage_bps": 50})
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["max_price"] == "50250.00" and body["max_slippage_bps"] == 50

        prices.set(BTC="50300")  # 0.6 % up while the deposit settles: beyond 50 bps
        await run_jobs(app, sessions, body)
        done = await settled(client, headers, body["id"])
        assert done["status"] == "failed" and done["failure_code"] == "price_moved", done
        assert states(done) == ["accepted", "provider_requested", "compensated"]
        deposit = (
            await client.get(
                f"{API}/transactions/{body['funding_transaction_id']}", headers=headers
            )
        ).json()
        credited = Decimal(deposit["amount"]) - Decimal(deposit["fee"])
        assert deposit["status"] == "completed"
        assert (
            f"your deposit of {credited} USD stays in your banking balance"
            in (done["failure_reason"])
        )
        assert "50300" in done["failure_reason"]
        # The money is there as USD, nothing held, nothing bought, no quote made.
        assert await balance(engine, ada["id"]) == credited
        assert await balance(engine, ada["id"], "held") == 0
        assert await investing_balance(engine, ada["id"]) == 0
        assert await quote_count(engine, ada["id"]) == 0
        # The job delivered again changes nothing.
        await investing_tasks.fund_buy(
            JobContext(sessions, app.state.settings, 1, app.state.services),
            {"transaction_id": body["id"]},
        )
        assert (await settled(client, headers, body["id"]))["steps"] == done["steps"]
        await assert_ledger_clean(engine)


async def test_a_price_within_the_bound_buys_at_the_new_price(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    prices = SetPrices(BTC="50000", ETH="2500")
    async with funded_app(database_url, mailbox[1], prices, run_worker_in_process=False) as (
        client,
        app,
    ):
        ada = await customer(client, engine)
        response = await client.post(ORDERS, headers=ada["headers"], json=BUY)
        assert response.status_code == 201, response.text
        prices.set(BTC="50400")  # 0.8 %: within the default 100 bps; the quote is made anew
        await run_jobs(app, sessions, response.json())
        done = await settled(client, ada["headers"], response.json()["id"])
        assert done["status"] == "completed", done
        # 100.00 USD at 50,400 buys 0.00198412 BTC (whole lots).
        assert await investing_balance(engine, ada["id"]) == Decimal("0.00198412")
        assert done["steps"][2]["detail"]["price"].startswith("50400.")
        await assert_ledger_clean(engine)


async def test_a_venue_that_refuses_compensates_the_buy(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    prices = SetPrices(BTC="50000", ETH="2500")
    async with funded_app(database_url, mailbox[1], prices, run_worker_in_process=False) as (
        client,
        app,
    ):
        ada = await customer(client, engine)
        response = await client.post(ORDERS, headers=ada["headers"], json=BUY)
        assert response.status_code == 201, response.text
        # The sandbox venue refuses an order whose quantity ends in 66 lots (its documented
        # magic value): move the price, within the bound, to one where 100.00 USD buys such.
        prices.set(BTC=str(price_buying_66_lots(Decimal("100.00"))))
        await run_jobs(app, sessions, response.json())
        done = await settled(client, ada["headers"], response.json()["id"])
        assert done["status"] == "failed" and done["failure_code"] == "order_rejected", done
        assert states(done) == [
            "accepted",
            "provider_requested",
            "provider_requested",  # the quote, held
            "compensated",  # refused by the venue: hold released
        ]
        assert await balance(engine, ada["id"], "held") == 0
        assert await investing_balance(engine, ada["id"]) == 0
        assert "stays in your banking balance" in done["failure_reason"]
        await assert_ledger_clean(engine)


async def test_a_declined_card_fails_the_buy_with_nothing_moved(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    prices = SetPrices(BTC="50000", ETH="2500")
    async with funded_app(database_url, mailbox[1], prices, run_worker_in_process=False) as (
        client,
        app,
    ):
        ada = await customer(client, engine)
        declined = {
            **BUY,
            "funding": {"method": "card", "payment_method": "pm_card_chargeDeclined"},
        }
        response = await client.post(ORDERS, headers=ada["headers"], json=declined)
        assert response.status_code == 201, response.text
        await run_jobs(app, sessions, response.json())
        done = await settled(client, ada["headers"], response.json()["id"])
        assert done["status"] == "failed" and done["failure_code"] == "funding_failed", done
        assert states(done) == ["accepted", "provider_requested", "failed"]
        assert await balance(engine, ada["id"]) == 0
        assert await investing_balance(engine, ada["id"]) == 0
        await assert_ledger_clean(engine)


async def test_bad_funded_orders_are_4xx_and_change_nothing(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine
) -> None:
    prices = SetPrices(BTC="50000", ETH="2500")
    async with funded_app(database_url, mailbox[1], prices, run_worker_in_process=False) as (
        client,
        _,
    ):
        ada = await customer(client, engine)
        headers = ada["headers"]
        bad: list[dict[str, Any]] = [
            {**BUY, "side": "sell", "amount_usd": None, "quantity": "0.01"},  # buys only
            {**BUY, "amount_usd": None, "quantity": "0.01"},  # by amount only
            {**BUY, "quote_id": str(uuid.uuid4())},  # quoted when the deposit settles
            {**BUY, "max_slippage_bps": 5000},  # above 10 %
            {**BUY, "max_slippage_bps": -1},
            {**BUY, "amount_usd": 100},  # a JSON number
            {**BUY, "amount_usd": "0"},
            {**BUY, "amount_usd": "1.001"},
            {**BUY, "funding": {"method": "ach"}},  # ACH without its bank account
            {**BUY, "funding": {"method": "wire"}},
            {**BUY, "asset": "DOGE"},
            {"side": "buy", "asset": "BTC", "amount_usd": "100.00", "max_slippage_bps": 10},
        ]
        for body in bad:
            response = await client.post(ORDERS, headers=headers, json=body)
            assert response.status_code == 422, (body, response.text)
            assert "error" in response.json()
        # Above the tier's daily deposit limit: a business refusal, still nothing written.
        over = await client.post(ORDERS, headers=headers, json={**BUY, "amount_usd": "20000.00"})
        assert over.status_code in (403, 422), over.text
        assert await transaction_count(engine, ada["id"]) == 0
        assert await quote_count(engine, ada["id"]) == 0
        await assert_ledger_clean(engine)


async def test_a_lost_venue_answer_parks_the_buy_until_the_venue_is_asked(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    # The venue fills the order but its answer is lost: the saga waits (ambiguous), the money
    # stays held, and investing.reconcile_quote settles the very same buy from the venue's
    # record of the order.
    prices = SetPrices(BTC="50000", ETH="2500")
    inner = SandboxExchange(name="cheap", model=model("0.001"), feed=prices)
    lossy = Failover(
        [ProviderSlot("cheap", LostAnswer(inner, place=True), CircuitBreaker("lossy-funded"))],  # type: ignore[list-item]
        policy=RetryPolicy(attempts=1, timeout=5),
    )
    async with funded_app(database_url, mailbox[1], prices, run_worker_in_process=False) as (
        client,
        app,
    ):
        app.state.services[VENUES_SERVICE] = lossy
        ada = await customer(client, engine)
        response = await client.post(ORDERS, headers=ada["headers"], json=BUY)
        assert response.status_code == 201, response.text
        body = response.json()
        await run_jobs(app, sessions, body)
        parked = (
            await client.get(f"{API}/transactions/{body['id']}", headers=ada["headers"])
        ).json()
        assert parked["status"] == "pending" and parked["saga_state"] == "ambiguous", parked
        assert await balance(engine, ada["id"], "held") == Decimal("101.10")

        context = JobContext(sessions, app.state.settings, 0, app.state.services)
        payload = {"quote_id": parked["quote_id"], "user_id": str(ada["id"])}
        await investing_tasks.reconcile_quote(context, payload)
        await investing_tasks.fund_buy(context, {"transaction_id": body["id"]})  # a late poll
        done = await settled(client, ada["headers"], body["id"])
        assert done["status"] == "completed", done
        assert states(done) == [
            "accepted",
            "provider_requested",
            "provider_requested",
            "ambiguous",
            "settled",
        ]
        assert await investing_balance(engine, ada["id"]) == Decimal("0.002")
        assert await balance(engine, ada["id"], "held") == 0
        history = (await client.get(f"{API}/transactions", headers=ada["headers"])).json()
        assert sorted(t["type"] for t in history["items"]) == ["buy", "deposit"]
        await assert_ledger_clean(engine)


async def test_an_order_the_venue_never_received_is_compensated_after_reconciliation(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    prices = SetPrices(BTC="50000", ETH="2500")
    inner = SandboxExchange(name="cheap", model=model("0.001"), feed=prices)
    lost = Failover(
        [ProviderSlot("cheap", LostAnswer(inner, place=False), CircuitBreaker("lost-funded"))],  # type: ignore[list-item]
        policy=RetryPolicy(attempts=1, timeout=5),
    )
    async with funded_app(database_url, mailbox[1], prices, run_worker_in_process=False) as (
        client,
        app,
    ):
        app.state.services[VENUES_SERVICE] = lost
        ada = await customer(client, engine)
        response = await client.post(ORDERS, headers=ada["headers"], json=BUY)
        assert response.status_code == 201, response.text
        body = response.json()
        await run_jobs(app, sessions, body)
        parked = (
            await client.get(f"{API}/transactions/{body['id']}", headers=ada["headers"])
        ).json()
        assert parked["saga_state"] == "ambiguous", parked

        context = JobContext(sessions, app.state.settings, 0, app.state.services)
        payload = {"quote_id": parked["quote_id"], "user_id": str(ada["id"])}
        await investing_tasks.reconcile_quote(context, payload)  # the venue has no such order
        await investing_tasks.fund_buy(context, {"transaction_id": body["id"]})
        done = await settled(client, ada["headers"], body["id"])
        assert done["status"] == "failed" and done["failure_code"] == "order_not_placed", done
        assert states(done)[-2:] == ["ambiguous", "compensated"]
        assert "stays in your banking balance" in done["failure_reason"]
        assert await balance(engine, ada["id"], "held") == 0
        assert await investing_balance(engine, ada["id"]) == 0
        await assert_ledger_clean(engine)
