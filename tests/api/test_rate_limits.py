"""Rate limits: per client, API and auth budgets, 429 with Retry-After; Redis-backed and
shared between processes when configured; fail closed for sign-in and money when Redis is down."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as redis_client
from sqlalchemy.engine import URL

from diboas.api.app import create_app
from diboas.api.ratelimit import fails_closed
from diboas.db.urls import plain_url
from tests.api.conftest import _client, settings_for_tests

REDIS_URL = os.environ.get("DIBOAS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _redis_available() -> bool:
    host, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_url() -> str:
    """A real Redis (CI always has one; elsewhere these tests are skipped without it)."""
    if not _redis_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis must be running in CI at {REDIS_URL}")
        pytest.skip("no Redis on this machine (these tests always run in CI)")
    return REDIS_URL


async def _limited_client(
    database_url: URL, mailbox: tuple[object, int], **settings: object
) -> AsyncIterator[httpx.AsyncClient]:
    values = {
        "rate_limits_enabled": True,
        "api_rate_limit": "3/minute",
        "auth_rate_limit": "2/minute",
        **settings,
    }
    app = create_app(settings_for_tests(mailbox[1], **values), database_url=plain_url(database_url))
    async for client in _client(app):
        yield client


@pytest.fixture
async def limited(
    database_url: URL, mailbox: tuple[object, int]
) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _limited_client(database_url, mailbox):
        yield client


async def test_api_budget_then_429_with_retry_after(limited: httpx.AsyncClient) -> None:
    codes = [(await limited.get("/api/v1/me")).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    refused = await limited.get("/api/v1/me")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    body = refused.json()["error"]
    assert body["code"] == "rate_limited"
    assert body["request_id"] == refused.headers["x-request-id"]


async def test_auth_has_its_own_stricter_budget(limited: httpx.AsyncClient) -> None:
    login = {"email": "nobody@example.com", "password": "irrelevant-password"}
    codes = [(await limited.post("/api/v1/auth/login", json=login)).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    # The API budget is separate and still open.
    assert (await limited.get("/api/v1/me")).status_code == 401


async def test_operations_endpoints_are_not_limited(limited: httpx.AsyncClient) -> None:
    assert {(await limited.get("/healthz")).status_code for _ in range(10)} == {200}


def test_which_requests_fail_closed() -> None:
    assert fails_closed("POST", "/api/v1/auth/login")
    assert fails_closed("POST", "/api/v1/banking/transfers")
    assert fails_closed("DELETE", "/api/v1/me/sessions/x")
    assert not fails_closed("GET", "/api/v1/balances")


async def test_redis_backed_limits_are_shared_between_processes(
    database_url: URL, mailbox: tuple[object, int], redis_url: str
) -> None:
    # The budget is per client address; a new address per run starts with a full budget.
    client_ip = f"10.99.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    seen: list[int] = []
    for _ in range(2):  # two app instances = two processes sharing Redis
        async for client in _limited_client(database_url, mailbox, redis_url=redis_url):
            transport = client._transport  # type: ignore[attr-defined]
            transport.client = (client_ip, 1234)
            seen += [(await client.get("/api/v1/me")).status_code for _ in range(2)]
    assert seen == [401, 401, 401, 429]
    keys = await redis_client.from_url(redis_url).keys("LIMITS*")
    assert keys, "the counters live in Redis"


async def test_redis_down_fails_closed_for_auth_and_money_but_reads_stay_up(
    database_url: URL, mailbox: tuple[object, int]
) -> None:
    closed_port = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    async for client in _limited_client(database_url, mailbox, redis_url=closed_port):
        login = await client.post(
            "/api/v1/auth/login", json={"email": "a@example.com", "password": "whatever-pass"}
        )
        assert login.status_code == 503
        assert login.json()["error"]["code"] == "rate_limit_unavailable"
        assert login.headers["retry-after"] == "1"
        assert (await client.get("/api/v1/me")).status_code == 401  # a read goes through
        assert (await client.get("/healthz")).status_code == 200
