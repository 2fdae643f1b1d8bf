"""Buying crypto paid by card from the Invest page (deposit-then-buy): the review states the
deposit, the fee and the highest price before anything happens; confirming places it once,
the deposit settles and the purchase is made; a declined card buys nothing."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.db.urls import plain_url
from tests.api.conftest import Mailbox, _client, settings_for_tests
from tests.investing.helpers import SetPrices, services
from tests.orchestration.conftest import assert_ledger_clean
from tests.web.helpers import hidden_fields, post_form, web_sign_up, web_verify
from tests.web.test_consumer import BANK, wait_for_status


@pytest.fixture
async def client(
    database_url: URL, mailbox: tuple[Mailbox, int]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on venues priced by a fixed feed: the sandbox venue refuses quantities ending
    in 66 lots (its documented maintenance answer), which a price moving with the clock would
    hit now and then."""
    app = create_app(
        settings_for_tests(mailbox[1]),
        database_url=plain_url(database_url),
        services=services(SetPrices(BTC="50000", ETH="2500")),
    )
    async for c in _client(app):
        yield c


_BUY = re.compile(r"^/app/transactions/([0-9a-f-]{36})$")
_ORDER = {"side": "buy", "asset": "BTC", "amount_usd": "100.00", "quantity": ""}


async def _buys(engine: AsyncEngine, email: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("""SELECT t.status FROM transactions t JOIN users u ON u.id = t.user_id
                     WHERE u.email = :e AND t.type = 'buy'"""),
            {"e": email},
        )
        return [row.status for row in rows]


async def _review(client: httpx.AsyncClient, pay_with: str) -> httpx.Response:
    review = await post_form(client, "/app/invest", {**_ORDER, "pay_with": pay_with})
    assert review.status_code == 200, review.text
    return review


async def test_a_purchase_paid_by_card_is_reviewed_placed_once_and_bought(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    email = await web_sign_up(client)
    await web_verify(client)
    await post_form(client, "/app/settings/bank-accounts", BANK, form_page="/app/settings")
    page = await client.get("/app/invest")
    assert '<option value="card:pm_card_visa">' in page.text
    # A linked account is offered as it is shown everywhere: its bank and masked number only.
    assert re.search(
        r'<option value="ach:[0-9a-f-]{36}">Bank transfer: First Test Bank ••••6789<', page.text
    )
    assert "000123456789" not in page.text
    review = await _review(client, "card:pm_card_visa")
    assert "Review: buy BTC by card" in review.text
    assert 'data-testid="review-max-price"' in review.text
    assert await _buys(engine, email) == []  # a review moves nothing

    form = {**hidden_fields(review.text), "step": "confirm_funded"}
    placed = await client.post("/app/invest", data=form)
    assert placed.status_code == 303, placed.text
    found = _BUY.match(placed.headers["location"])
    assert found is not None
    again = await client.post("/app/invest", data=form)  # sent twice: placed once
    assert again.headers["location"] == placed.headers["location"]
    assert len(await _buys(engine, email)) == 1

    assert await wait_for_status(client, uuid.UUID(found.group(1))) == "completed"
    portfolio = await client.get("/app/invest")
    assert 'data-testid="holding-BTC"' in portfolio.text
    await assert_ledger_clean(engine)


async def test_a_declined_card_buys_nothing_and_says_so(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    email = await web_sign_up(client)
    await web_verify(client)
    review = await _review(client, "card:pm_card_chargeDeclined")
    placed = await client.post(
        "/app/invest", data={**hidden_fields(review.text), "step": "confirm_funded"}
    )
    found = _BUY.match(placed.headers["location"])
    assert found is not None
    assert await wait_for_status(client, uuid.UUID(found.group(1))) == "failed"
    assert await _buys(engine, email) == ["failed"]
    assert 'data-testid="holding-BTC"' not in (await client.get("/app/invest")).text


async def test_a_funded_purchase_with_a_bad_amount_or_someone_elses_account_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    email = await web_sign_up(client)
    await web_verify(client)
    bad = await post_form(
        client, "/app/invest", {**_ORDER, "amount_usd": "1e3", "pay_with": "card:pm_card_visa"}
    )
    assert bad.status_code == 422
    # No such account of theirs: refused at the review already, and at a forged confirmation.
    stranger = {**_ORDER, "pay_with": f"ach:{uuid.uuid4()}"}
    refused = await post_form(client, "/app/invest", stranger)
    assert refused.status_code == 404
    assert "no such bank account" in refused.text.lower()
    fields = hidden_fields((await client.get("/app/invest")).text)
    forged = await client.post(
        "/app/invest", data={**fields, **stranger, "step": "confirm_funded", "form_key": "k"}
    )
    assert forged.status_code == 404
    assert await _buys(engine, email) == []
