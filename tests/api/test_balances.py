"""GET /api/v1/balances over HTTP: the caller's own money, per domain and asset, valued in USD,
now and as of a past instant. HTTP requests use their own connections, so the money here is
committed (on users of each test's own)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.ledger import holds
from diboas.ledger import service as ledger
from diboas.ledger.models import AccountKind, Domain, EntryRef, OwnerType
from diboas.providers.market import SandboxPriceFeed
from tests.api.conftest import sign_up

URL = "/api/v1/balances"


async def _deposit(
    sessions: SessionFactory,
    owner_id: uuid.UUID,
    amount: str,
    *,
    asset: str = "USD",
    domain: Domain = Domain.BANKING,
    hold: str | None = None,
) -> EntryRef:
    """Credit a user's account from the platform's external account (committed)."""

    async def work(session: AsyncSession) -> EntryRef:
        account = await ledger.customer_account(
            session, owner_type=OwnerType.USER, owner_id=owner_id, domain=domain, asset=asset
        )
        external = await ledger.platform_account(session, asset=asset, kind=AccountKind.EXTERNAL)
        entry = await ledger.transfer(
            session, source=external, destination=account, amount=Decimal(amount), kind="deposit"
        )
        if hold is not None:
            await holds.place_hold(session, account=account, amount=Decimal(hold))
        return entry

    return await run_in_transaction(sessions, work)


async def _user(client: httpx.AsyncClient) -> tuple[uuid.UUID, dict[str, str]]:
    account = await sign_up(client)
    return uuid.UUID(account["user"]["id"]), account["headers"]


def _rows(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, str]]:
    return {(a["domain"], a["asset"]): a for a in body["assets"]}


async def test_a_new_user_has_zero_everywhere(client: httpx.AsyncClient) -> None:
    _, headers = await _user(client)
    response = await client.get(URL, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["total_usd"] == "0.00" and body["assets"] == [] and body["final"] is False
    assert body["domains"] == {
        "banking": {"total_usd": "0.00"},
        "investing": {"total_usd": "0.00"},
        "defi": {"total_usd": "0.00"},
    }
    assert datetime.fromisoformat(body["as_of"]).tzinfo is not None


async def test_money_in_several_domains_with_held_funds(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    user_id, headers = await _user(client)
    await _deposit(sessions, user_id, "500.00", hold="120.50")
    await _deposit(sessions, user_id, "0.01000000", asset="BTC", domain=Domain.INVESTING)
    await _deposit(sessions, user_id, "2.000000000000000001", asset="ETH", domain=Domain.INVESTING)
    await _deposit(sessions, user_id, "99.999999", asset="USDC", domain=Domain.DEFI)

    response = await client.get(URL, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    rows = _rows(body)
    assert list(rows) == [
        ("banking", "USD"),
        ("investing", "BTC"),
        ("investing", "ETH"),
        ("defi", "USDC"),
    ]
    assert rows[("banking", "USD")].pop("price_stale") is False
    assert rows[("banking", "USD")].pop("priced_at") is not None
    assert rows[("banking", "USD")] == {
        "asset": "USD",
        "domain": "banking",
        "available": "379.50",
        "held": "120.50",
        "value_usd": "500.00",
        "owed": "0.00",
    }
    assert rows[("investing", "ETH")]["available"] == "2.000000000000000001"
    assert rows[("defi", "USDC")]["available"] == "99.999999"
    assert rows[("defi", "USDC")]["value_usd"] == "100.00"
    # Coins are valued at a sandbox price between the bounds of the feed.
    feed = SandboxPriceFeed()
    low, high = feed.bounds("BTC")
    btc_value = Decimal(rows[("investing", "BTC")]["value_usd"])
    assert Decimal("0.01") * low - Decimal("0.01") <= btc_value <= Decimal("0.01") * high

    domains = {name: Decimal(d["total_usd"]) for name, d in body["domains"].items()}
    assert domains["banking"] == Decimal("500.00")
    assert domains["investing"] == sum(
        Decimal(rows[("investing", a)]["value_usd"]) for a in ("BTC", "ETH")
    )
    assert domains["defi"] == Decimal("100.00")
    assert Decimal(body["total_usd"]) == sum(domains.values())


async def test_as_of_shows_the_balance_at_that_instant(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    user_id, headers = await _user(client)
    first = await _deposit(sessions, user_id, "10.00")
    second = await _deposit(sessions, user_id, "5.25")
    eth = await _deposit(sessions, user_id, "0.5", asset="ETH", domain=Domain.INVESTING)

    async def at(instant: datetime) -> dict[str, Any]:
        response = await client.get(URL, headers=headers, params={"as_of": instant.isoformat()})
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        return dict(response.json())

    before_second = second.created_at - timedelta(microseconds=1)
    old = await at(before_second)
    assert _rows(old)[("banking", "USD")]["available"] == "10.00"
    assert old["total_usd"] == "10.00"
    assert datetime.fromisoformat(old["as_of"]) == before_second
    assert old["final"] is False  # inside the ledger's commit window

    both = await at(eth.created_at)
    assert _rows(both)[("banking", "USD")]["available"] == "15.25"
    eth_price = (await SandboxPriceFeed().prices_usd(["ETH"], eth.created_at))["ETH"]
    eth_value = (Decimal("0.5") * eth_price).quantize(Decimal("0.01"))
    assert _rows(both)[("investing", "ETH")]["value_usd"] == str(eth_value)
    assert Decimal(both["total_usd"]) == Decimal("15.25") + eth_value

    before_any = await at(first.created_at - timedelta(seconds=1))
    assert before_any["total_usd"] == "0.00"

    # The same figures as the ledger's own balance as of each instant.
    async def ledger_balance(session: AsyncSession, instant: datetime) -> Decimal:
        account = await ledger.customer_account(
            session, owner_type=OwnerType.USER, owner_id=user_id, domain=Domain.BANKING, asset="USD"
        )
        return (await ledger.balance_as_of(session, account.id, instant)).balance

    for instant, body in ((before_second, old), (eth.created_at, both)):
        expected = await run_in_transaction(sessions, lambda s, i=instant: ledger_balance(s, i))
        assert Decimal(_rows(body)[("banking", "USD")]["available"]) == expected


async def test_an_old_instant_is_final(client: httpx.AsyncClient) -> None:
    _, headers = await _user(client)
    long_ago = (datetime.now(UTC) - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    response = await client.get(URL, headers=headers, params={"as_of": long_ago})
    assert response.status_code == 200, response.text
    assert response.json()["final"] is True


async def test_another_users_money_never_appears(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    mine, my_headers = await _user(client)
    theirs, their_headers = await _user(client)
    await _deposit(sessions, mine, "1.00")
    await _deposit(sessions, theirs, "7777.77")
    await _deposit(sessions, theirs, "1", asset="BTC", domain=Domain.INVESTING)
    for headers, expected in ((my_headers, "1.00"), (their_headers, None)):
        body = (await client.get(URL, headers=headers)).json()
        if expected is not None:
            assert body["total_usd"] == expected
            assert [(a["asset"], a["available"]) for a in body["assets"]] == [("USD", "1.00")]
        else:
            assert "1.00" not in {a["available"] for a in body["assets"]}
            assert {a["asset"] for a in body["assets"]} == {"USD", "BTC"}
    now = datetime.now(UTC).isoformat()
    body = (await client.get(URL, headers=my_headers, params={"as_of": now})).json()
    assert body["total_usd"] == "1.00" and len(body["assets"]) == 1


@pytest.mark.parametrize(
    "as_of",
    [
        "tomorrow",
        "",
        "2024-01-01T00:00:00",  # no time zone
        "2024-01-01",
        "2024-02-30T00:00:00Z",
        "2024-01-01T00:00:00 00:00",  # a + sent unencoded
        "2024-01-01T00:00:00Z\x00",
        "0001-01-01T00:00:00+05:00",
        "1" * 65,
        "' OR 1=1 --",
    ],
)
async def test_bad_as_of_values_are_422(client: httpx.AsyncClient, as_of: str) -> None:
    _, headers = await _user(client)
    response = await client.get(URL, headers=headers, params={"as_of": as_of})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] in {"invalid_request", "validation_error"}
    assert error["request_id"] == response.headers["x-request-id"]


async def test_as_of_in_the_future_is_422(client: httpx.AsyncClient) -> None:
    _, headers = await _user(client)
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    response = await client.get(URL, headers=headers, params={"as_of": soon})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and "future" in error["message"]
    assert error["details"] == {"field": "as_of"}


async def test_balances_need_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
