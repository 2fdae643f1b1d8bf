"""GET /api/v1/market/prices over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from diboas.providers.market import SandboxPriceFeed
from tests.api.conftest import sign_up

URL = "/api/v1/market/prices"


async def test_prices_now_from_the_sandbox(client: httpx.AsyncClient) -> None:
    headers = (await sign_up(client))["headers"]
    response = await client.get(URL, headers=headers)
    assert response.status_code == 200, response.text
    listed = {p["asset"]: p for p in response.json()}
    assert {"USD", "USDC", "BTC", "ETH"} <= set(listed)
    assert listed["USD"]["price_usd"] == "1.00" and listed["USDC"]["price_usd"] == "1.00"
    feed = SandboxPriceFeed()
    for asset in ("BTC", "ETH"):
        price = listed[asset]["price_usd"]
        assert isinstance(price, str)
        low, high = feed.bounds(asset)
        assert low <= Decimal(price) <= high
        # The price is the sandbox's for the instant the snapshot names.
        as_of = datetime.fromisoformat(listed[asset]["as_of"])
        assert Decimal(price) == (await feed.prices_usd([asset], as_of))[asset]
    assert len({p["as_of"] for p in listed.values()}) == 1


async def test_prices_as_of_a_past_instant_are_reproducible(client: httpx.AsyncClient) -> None:
    headers = (await sign_up(client))["headers"]
    at = datetime(2025, 1, 1, 12, tzinfo=UTC)
    params = {"as_of": "2025-01-01T13:00:00+01:00"}
    first = await client.get(URL, headers=headers, params=params)
    again = await client.get(URL, headers=headers, params={"as_of": "2025-01-01T12:00:00Z"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    listed = {p["asset"]: p for p in first.json()}
    assert listed["BTC"]["price_usd"] == "65217.47"
    assert listed["ETH"]["price_usd"] == "3093.49"
    assert datetime.fromisoformat(listed["BTC"]["as_of"]) == at


@pytest.mark.parametrize(
    "as_of",
    [
        (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        "2025-01-01T12:00:00",
        "noon",
        "2025-01-01T12:00:00Z\x00",
    ],
)
async def test_bad_as_of_is_422(client: httpx.AsyncClient, as_of: str) -> None:
    headers = (await sign_up(client))["headers"]
    response = await client.get(URL, headers=headers, params={"as_of": as_of})
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"field": "as_of"}


async def test_prices_need_a_signed_in_caller(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 401
