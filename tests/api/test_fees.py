"""Fee quotes and the public fee schedule over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from decimal import ROUND_UP, Decimal
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from diboas.api.app import create_app
from diboas.db.urls import plain_url
from diboas.fees import service as fees
from diboas.fees.schedule import DEFAULT_METHODS
from diboas.identity import repository as users
from tests.api.conftest import Mailbox, _client, settings_for_tests, sign_in, sign_up

QUOTE = "/api/v1/fees/quote"
SCHEDULE = "/api/v1/fees/schedule"
TTL_SECONDS = 123


@pytest.fixture
async def ttl_client(
    database_url: URL, mailbox: tuple[Mailbox, int]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for_tests(mailbox[1], fee_quote_ttl_seconds=TTL_SECONDS)
    async for c in _client(create_app(settings, database_url=plain_url(database_url))):
        yield c


async def _headers(client: httpx.AsyncClient) -> dict[str, str]:
    return dict((await sign_up(client))["headers"])


async def _quote(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(QUOTE, headers=headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _seeded_fee(
    engine: AsyncEngine, operation: str, amount: Decimal, method: str | None
) -> dict[str, Decimal]:
    """The fee by component, computed here from the seeded schedule rows (rounded up)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT * FROM fee_schedule WHERE active AND operation = :o AND currency = 'USD'"
                ),
                {"o": operation},
            )
        ).all()
    parts = {"platform": Decimal("0.00"), "provider": Decimal("0.00"), "network": Decimal("0.00")}
    for row in rows:
        if row.method not in (None, method):
            continue
        fee = max(amount * row.percent / 100 + row.fixed, row.minimum)
        if row.maximum is not None:
            fee = min(fee, row.maximum)
        parts[row.component] += fee.quantize(Decimal("0.01"), rounding=ROUND_UP)
    return parts


async def test_card_deposit_quote_matches_the_seeded_schedule(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = await _headers(client)
    body = await _quote(
        client, headers, operation="deposit", amount="100.00", currency="USD", method="card"
    )
    assert body["breakdown"] == {"platform": "0.50", "provider": "3.20", "network": "0.00"}
    assert body["total_fee"] == "3.70"
    assert (body["operation"], body["method"], body["amount"], body["currency"]) == (
        "deposit",
        "card",
        "100.00",
        "USD",
    )
    assert body["provider"] == "sandbox" and body["route"]["provider"] == "sandbox"
    assert body["route"]["reason"]
    seeded = await _seeded_fee(engine, "deposit", Decimal("100.00"), "card")
    assert {k: Decimal(v) for k, v in body["breakdown"].items()} == seeded
    uuid.UUID(body["quote_id"])
    assert datetime.fromisoformat(body["expires_at"]).tzinfo is not None


async def test_a_deposit_without_a_method_is_quoted_as_card(client: httpx.AsyncClient) -> None:
    headers = await _headers(client)
    body = await _quote(client, headers, operation="deposit", amount="100", currency="USD")
    assert body["method"] == "card" and body["total_fee"] == "3.70"
    assert body["amount"] == "100.00"


@pytest.mark.parametrize(("operation", "method"), [("deposit", "ach"), ("transfer", None)])
async def test_ach_deposits_and_transfers_are_free(
    client: httpx.AsyncClient, operation: str, method: str | None
) -> None:
    headers = await _headers(client)
    request: dict[str, Any] = {"operation": operation, "amount": "2500.00", "currency": "USD"}
    if method:
        request["method"] = method
    body = await _quote(client, headers, **request)
    assert body["total_fee"] == "0.00"
    assert body["breakdown"] == {"platform": "0.00", "provider": "0.00", "network": "0.00"}


@pytest.mark.parametrize(
    ("operation", "method", "amount", "platform", "provider"),
    [
        # 2.9 % of 10.01 + 0.30 = 0.59029 -> 0.60; 0.5 % of 10.01 = 0.05005 -> 0.06
        ("deposit", "card", "10.01", "0.06", "0.60"),
        # 0.1 % of 100.01 + 0.50 = 0.60001 -> 0.61 (minimum 0.50, at most 10)
        ("withdrawal", "ach", "100.01", "0.61", "0.25"),
        # the platform part is capped: 0.5 % of 10,000 is 50, at most 25
        ("deposit", "card", "10000.00", "25.00", "290.30"),
        # 1 % of 12.34 = 0.1234, below the 0.99 minimum
        ("buy", None, "12.34", "0.99", "0.00"),
        ("defi_withdraw", None, "0.01", "0.01", "0.00"),
    ],
)
async def test_fees_round_up_to_the_currency_scale(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    operation: str,
    method: str | None,
    amount: str,
    platform: str,
    provider: str,
) -> None:
    headers = await _headers(client)
    request: dict[str, Any] = {"operation": operation, "amount": amount, "currency": "USD"}
    if method:
        request["method"] = method
    body = await _quote(client, headers, **request)
    assert (body["breakdown"]["platform"], body["breakdown"]["provider"]) == (platform, provider)
    assert Decimal(body["total_fee"]) == Decimal(platform) + Decimal(provider)
    seeded = await _seeded_fee(engine, operation, Decimal(amount), body["method"])
    assert {k: Decimal(v) for k, v in body["breakdown"].items()} == seeded


async def test_asset_is_another_name_for_currency(client: httpx.AsyncClient) -> None:
    headers = await _headers(client)
    body = await _quote(client, headers, operation="sell", amount="200.00", asset="USD")
    assert body["currency"] == "USD" and body["total_fee"] == "2.00"


async def test_the_quote_is_stored_with_the_expiry_from_settings(
    ttl_client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = await _headers(ttl_client)
    body = await _quote(ttl_client, headers, operation="withdrawal", amount="40.00", currency="USD")
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("""SELECT *, extract(epoch FROM expires_at - created_at) AS ttl
                          FROM fee_quotes WHERE id = :id"""),
                {"id": uuid.UUID(body["quote_id"])},
            )
        ).one()
    assert row.ttl == TTL_SECONDS
    assert datetime.fromisoformat(body["expires_at"]) == row.expires_at
    assert (row.operation, row.method, row.currency, row.amount) == (
        "withdrawal",
        "ach",
        "USD",
        Decimal("40.00"),
    )
    assert (row.platform_fee, row.provider_fee, row.total_fee) == (
        Decimal("0.54"),
        Decimal("0.25"),
        Decimal("0.79"),
    )


async def test_a_movement_presenting_the_quote_is_charged_exactly_the_quote(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    account = await sign_up(client)
    body = await _quote(
        client, account["headers"], operation="deposit", amount="55.55", currency="USD"
    )
    user = await users.get(session, uuid.UUID(account["user"]["id"]))
    assert user is not None
    # The movement resolves the default method (card) as the quote did.
    charged = await fees.fee_for(
        session,
        user=user,
        operation="deposit",
        amount=Decimal("55.55"),
        currency="USD",
        method=DEFAULT_METHODS["deposit"],
        quote_id=uuid.UUID(body["quote_id"]),
    )
    assert str(charged.total) == body["total_fee"]
    assert charged.as_dict() == body["breakdown"]  # "0.00", never "0", for an empty component


async def test_quotes_are_counted_by_operation(client: httpx.AsyncClient) -> None:
    headers = await _headers(client)

    def count() -> float:
        value = REGISTRY.get_sample_value("diboas_fee_quotes_total", {"operation": "defi_deposit"})
        return value or 0.0

    before = count()
    await _quote(client, headers, operation="defi_deposit", amount="10.00", currency="USD")
    await _quote(client, headers, operation="defi_deposit", amount="20.00", currency="USD")
    assert count() == before + 2
    metrics = await client.get("/metrics")
    assert 'diboas_fee_quotes_total{operation="defi_deposit"}' in metrics.text


BAD_QUOTES: list[tuple[dict[str, Any], str]] = [
    ({"operation": "deposit", "amount": 100, "currency": "USD"}, "validation_error"),
    ({"operation": "deposit", "amount": 100.5, "currency": "USD"}, "validation_error"),
    ({"operation": "deposit", "amount": "1e2", "currency": "USD"}, "invalid_amount"),
    ({"operation": "deposit", "amount": "100.001", "currency": "USD"}, "invalid_amount"),
    ({"operation": "deposit", "amount": "0", "currency": "USD"}, "invalid_amount"),
    ({"operation": "deposit", "amount": "-5.00", "currency": "USD"}, "invalid_amount"),
    ({"operation": "deposit", "amount": "NaN", "currency": "USD"}, "invalid_amount"),
    ({"operation": "deposit", "amount": "9" * 30, "currency": "USD"}, "invalid_amount"),
    ({"operation": "deposit", "amount": "1" * 65, "currency": "USD"}, "validation_error"),
    ({"operation": "deposit", "amount": "", "currency": "USD"}, "validation_error"),
    ({"operation": "steal", "amount": "1.00", "currency": "USD"}, "validation_error"),
    (
        {"operation": "deposit", "amount": "1.00", "currency": "USD", "asset": "USD"},
        "validation_error",
    ),
    ({"operation": "deposit", "amount": "1.00"}, "validation_error"),
    ({"operation": "deposit", "amount": "1.00", "currency": "XYZ"}, "unknown_currency"),
    ({"operation": "deposit", "amount": "1.00", "currency": "usd"}, "validation_error"),
    (
        {"operation": "deposit", "amount": "1.00", "currency": "'; DROP TABLE users; --"},
        "validation_error",
    ),
    (
        {"operation": "deposit", "amount": "1.00", "currency": "USD", "method": "card\x00"},
        "validation_error",
    ),
    (
        {"operation": "deposit", "amount": "1.00", "currency": "USD", "method": "wire"},
        "not_quotable",
    ),
    (
        {"operation": "transfer", "amount": "1.00", "currency": "USD", "method": "card"},
        "not_quotable",
    ),
    ({"operation": "buy", "amount": "0.001", "asset": "BTC"}, "not_quotable"),
    (
        {"operation": "deposit", "amount": "1.00", "currency": "USD", "fee": "0.00"},
        "validation_error",
    ),
    ({"operation": ["deposit"], "amount": "1.00", "currency": "USD"}, "validation_error"),
    ({"amount": "1.00", "currency": "USD"}, "validation_error"),
]


@pytest.mark.parametrize(("body", "code"), BAD_QUOTES)
async def test_bad_quote_requests_are_422_and_store_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any], code: str
) -> None:
    account = await sign_up(client)
    response = await client.post(QUOTE, headers=account["headers"], json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT count(*) FROM fee_quotes WHERE user_id = :u"),
                {"u": uuid.UUID(account["user"]["id"])},
            )
        ).scalar_one()
    assert stored == 0


async def test_a_quote_needs_a_signed_in_caller_with_the_permission(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    request = {"operation": "deposit", "amount": "1.00", "currency": "USD"}
    assert (await client.post(QUOTE, json=request)).status_code == 401
    account = await sign_up(client)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = 'support' WHERE email = :e"), {"e": account["email"]}
        )
    support = await sign_in(client, account["email"])
    refused = await client.post(QUOTE, headers=support["headers"], json=request)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"


async def test_the_schedule_is_public_and_matches_the_table(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.get(SCHEDULE)
    assert response.status_code == 200, response.text
    assert "public" in response.headers["cache-control"]
    listed = response.json()
    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT * FROM fee_schedule WHERE active ORDER BY id"))
        ).all()
    assert len(listed) == len(rows) > 0
    for shown, row in zip(listed, rows, strict=True):
        assert set(shown) == {
            "operation", "method", "component", "percent", "fixed",
            "minimum", "maximum", "currency", "description",
        }  # fmt: skip
        assert (shown["operation"], shown["method"], shown["component"]) == (
            row.operation,
            row.method,
            row.component,
        )
        assert (shown["currency"], shown["description"]) == (row.currency, row.description)
        assert Decimal(shown["percent"]) == row.percent
        assert Decimal(shown["fixed"]) == row.fixed
        assert Decimal(shown["minimum"]) == row.minimum
        assert (None if shown["maximum"] is None else Decimal(shown["maximum"])) == row.maximum
        assert all(
            isinstance(shown[k], str) for k in ("percent", "fixed", "minimum", "description")
        )
    card = next(
        s
        for s in listed
        if (s["operation"], s["method"], s["component"]) == ("deposit", "card", "provider")
    )
    assert (card["percent"], card["fixed"], card["maximum"]) == ("2.9", "0.30", None)
    capped = next(
        s
        for s in listed
        if (s["operation"], s["method"], s["component"]) == ("deposit", "card", "platform")
    )
    assert capped["maximum"] == "25.00"


async def test_an_inactive_schedule_row_is_not_shown(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    marker = f"retired promotion {uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(
            text("""INSERT INTO fee_schedule (operation, component, currency, description, active)
                    VALUES ('transfer', 'platform', 'USD', :d, false)"""),
            {"d": marker},
        )
    try:
        listed = (await client.get(SCHEDULE)).json()
        assert marker not in {row["description"] for row in listed}
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM fee_schedule WHERE description = :d"), {"d": marker}
            )
