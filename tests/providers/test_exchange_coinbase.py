"""ccxt's Coinbase adapter against the Coinbase-Advanced-Trade-shaped sandbox server: the
CDP JWT the server checks (ES256 signature, key name, request URI, expiry), and how
Coinbase's failures map onto retryable and final errors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import jwt
import pytest

from diboas.providers.exchange import (
    ExchangeAuthError,
    ExchangeUnavailableError,
    InsufficientLiquidityError,
    Side,
)
from diboas.providers.exchange_coinbase import CoinbaseExchange
from diboas.providers.exchange_coinbase_server import CoinbaseSandboxServer, ec_key_pair
from diboas.providers.exchange_sandbox_server import Fault
from tests.providers.test_exchange_conformance import COINBASE_KEY, venue

KEYS = ec_key_pair()


@pytest.fixture
async def server() -> AsyncIterator[CoinbaseSandboxServer]:
    srv = CoinbaseSandboxServer(venue(), COINBASE_KEY, KEYS[1])
    await srv.start()
    yield srv
    await srv.stop()


def _client(srv: CoinbaseSandboxServer, *, private_pem: str = KEYS[0]) -> CoinbaseExchange:
    return CoinbaseExchange(
        api_key=COINBASE_KEY,
        secret=private_pem,
        api_urls={"rest": srv.base_url},
        timeout_seconds=2,
    )


@pytest.fixture
async def coinbase(server: CoinbaseSandboxServer) -> AsyncIterator[CoinbaseExchange]:
    client = _client(server)
    yield client
    await client.close()


def _token(srv: CoinbaseSandboxServer, path: str, *, key: str = KEYS[0], **claims: object) -> str:
    now = int(time.time())
    payload = {
        "aud": ["retail_rest_api_proxy"],
        "iss": "coinbase-cloud",
        "sub": COINBASE_KEY,
        "nbf": now,
        "exp": now + 120,
        "iat": now,
        "uri": f"GET {srv.base_url}{path}",
        **claims,
    }
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": COINBASE_KEY})


async def _get(srv: CoinbaseSandboxServer, path: str, token: str | None) -> tuple[int, dict]:  # type: ignore[type-arg]
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(srv.base_url + path, headers=headers) as response,
    ):
        return response.status, await response.json()


SUMMARY = "/api/v3/brokerage/transaction_summary"


async def test_a_well_signed_jwt_is_accepted(server: CoinbaseSandboxServer) -> None:
    status, body = await _get(server, SUMMARY, _token(server, SUMMARY))
    assert status == 200 and body["fee_tier"]["taker_fee_rate"] == "0.001"


@pytest.mark.parametrize(
    "case",
    ["no token", "another key", "another uri", "expired", "another key name"],
)
async def test_a_bad_jwt_is_401(server: CoinbaseSandboxServer, case: str) -> None:
    token = {
        "no token": None,
        "another key": _token(server, SUMMARY, key=ec_key_pair()[0]),
        "another uri": _token(
            server, SUMMARY, uri=f"GET {server.base_url}/api/v3/brokerage/orders"
        ),
        "expired": _token(server, SUMMARY, nbf=int(time.time()) - 600, exp=int(time.time()) - 300),
        "another key name": _token(server, SUMMARY, sub="organizations/x/apiKeys/other"),
    }[case]
    status, body = await _get(server, SUMMARY, token)
    assert status == 401 and body["error"] == "unauthorized"


async def test_the_wrong_private_key_maps_to_a_final_auth_error(
    server: CoinbaseSandboxServer,
) -> None:
    client = _client(server, private_pem=ec_key_pair()[0])
    try:
        with pytest.raises(ExchangeAuthError) as caught:
            await client.taker_fee_rate("BTC")
    finally:
        await client.close()
    assert not caught.value.retryable


async def test_a_failed_order_maps_to_insufficient_liquidity(coinbase: CoinbaseExchange) -> None:
    with pytest.raises(InsufficientLiquidityError):
        await coinbase.market_order(
            "ETH", Side.SELL, client_order_id="too-big", quantity=Decimal("81")
        )


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault(503, {"error": "unavailable", "message": "try later"}), "exchange_down"),
        (Fault(429, {"error": "rate_limit_exceeded", "message": "slow down"}), "rate_limited"),
    ],
)
async def test_5xx_and_429_are_retryable(
    server: CoinbaseSandboxServer, coinbase: CoinbaseExchange, fault: Fault, code: str
) -> None:
    await coinbase.ticker("BTC")  # markets loaded: the fault hits the call under test
    server.faults.append(fault)
    with pytest.raises(ExchangeUnavailableError) as caught:
        await coinbase.ticker("BTC")
    assert caught.value.retryable and caught.value.code == code
