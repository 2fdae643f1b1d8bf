"""Live updates over a real WebSocket, from a real server (uvicorn on loopback), and the hub
on a real Redis; an update is announced only once its transaction has committed."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_client
import uvicorn
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from diboas.api.app import create_app
from diboas.db.engine import create_session_factory
from diboas.db.transactions import run_in_transaction
from diboas.db.urls import plain_url
from diboas.ledger import service as ledger
from diboas.ledger.models import AccountKind, Domain, OwnerType
from diboas.realtime.events import HUB_KEY
from diboas.realtime.hub import QUEUE_SIZE, LocalHub, RedisHub
from tests.api.conftest import mailbox, settings_for_tests, sign_up

__all__ = ["mailbox"]

REDIS_URL = os.environ.get("DIBOAS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def server(database_url: URL, mailbox: tuple[object, int]) -> AsyncIterator[str]:
    """The platform served by uvicorn in this event loop; yields its base URL."""
    app = create_app(settings_for_tests(mailbox[1]), database_url=plain_url(database_url))
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    instance = uvicorn.Server(config)
    task = asyncio.create_task(instance.serve())
    while not instance.started:
        await asyncio.sleep(0.05)
        assert not task.done(), "the server did not start"
    yield f"127.0.0.1:{port}"
    instance.should_exit = True
    await task


async def _next(socket_: ClientConnection, seconds: float = 15) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(socket_.recv(), seconds))
    return message


async def test_a_deposit_is_pushed_as_it_settles(server: str, engine: AsyncEngine) -> None:
    async with httpx.AsyncClient(base_url=f"http://{server}") as client:
        account = await sign_up(client)
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE users SET kyc_tier = 1, kyc_status = 'approved' WHERE email = :e"),
                {"e": account["email"]},
            )
        async with connect(f"ws://{server}/api/v1/ws") as live:
            token = account["tokens"]["access_token"]
            await live.send(json.dumps({"type": "auth", "token": token}))
            assert await _next(live) == {"type": "ready"}
            deposit = await client.post(
                "/api/v1/banking/deposits",
                headers=account["headers"],
                json={"amount": "25.00", "currency": "USD"},
            )
            assert deposit.status_code == 201, deposit.text
            seen: list[dict[str, Any]] = []
            while not any(e.get("transaction", {}).get("status") == "completed" for e in seen):
                seen.append(await _next(live))
            mine = [e["transaction"] for e in seen if e["type"] == "transaction"]
            assert {t["id"] for t in mine} == {deposit.json()["id"]}
            assert mine[-1]["status"] == "completed"
            # The credit's balance hint comes with the completion or after it.
            while {"type": "balance"} not in seen:
                seen.append(await _next(live))
            balances = (await client.get("/api/v1/balances", headers=account["headers"])).json()
            assert Decimal(balances["total_usd"]) == Decimal("25.00") - Decimal(
                deposit.json()["fee"]
            )


async def test_a_bad_token_is_refused_and_the_socket_closed(server: str) -> None:
    async with connect(f"ws://{server}/api/v1/ws") as live:
        await live.send(json.dumps({"type": "auth", "token": "not-a-token"}))
        assert await _next(live) == {"type": "error", "code": "unauthorized"}
        with pytest.raises(ConnectionClosed) as closed:
            await live.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_only_committed_changes_are_announced(engine: AsyncEngine) -> None:
    hub = LocalHub()
    sessions = create_session_factory(engine, info={HUB_KEY: hub})
    user_id = uuid.uuid4()

    async def credit(session: Any, *, fail: bool) -> None:
        mine = await ledger.customer_account(
            session, owner_type=OwnerType.USER, owner_id=user_id, domain=Domain.BANKING, asset="USD"
        )
        outside = await ledger.platform_account(session, asset="USD", kind=AccountKind.EXTERNAL)
        await ledger.transfer(
            session, source=outside, destination=mine, amount=Decimal("1.00"), kind="test.fund"
        )
        if fail:
            raise RuntimeError("rolled back")

    async with hub.subscribe(user_id) as queue:
        with pytest.raises(RuntimeError):
            await run_in_transaction(sessions, lambda s: credit(s, fail=True))
        assert queue.empty()  # rolled back: nothing announced
        await run_in_transaction(sessions, lambda s: credit(s, fail=False))
        assert queue.get_nowait() == {"type": "balance"}
        assert queue.empty()


async def test_a_slow_subscriber_loses_its_oldest_hints_not_the_publisher() -> None:
    hub = LocalHub()
    user_id = uuid.uuid4()
    async with hub.subscribe(user_id) as queue:
        for n in range(QUEUE_SIZE + 5):
            await hub.publish(user_id, [{"type": "transaction", "transaction": {"id": n}}])
        assert queue.qsize() == QUEUE_SIZE
        assert queue.get_nowait()["transaction"]["id"] == 5
    assert not hub._queues  # the last subscriber gone, nothing is kept for the user


async def _redis_or_skip() -> None:
    try:
        connection = redis_client.Redis.from_url(REDIS_URL)
        await connection.ping()
        await connection.aclose()
    except (redis_client.ConnectionError, OSError):
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis must be running in CI at {REDIS_URL}")
        pytest.skip("no Redis on this machine (this test always runs in CI)")


async def test_redis_fans_updates_out_across_processes() -> None:
    await _redis_or_skip()
    api, worker = RedisHub(REDIS_URL), RedisHub(REDIS_URL)  # as two processes would hold them
    await api.start()
    await worker.start()
    await api.ready(10)
    await worker.ready(10)
    try:
        ada, bob = uuid.uuid4(), uuid.uuid4()
        async with api.subscribe(ada) as ada_queue, api.subscribe(bob) as bob_queue:
            await worker.publish(ada, [{"type": "balance"}])
            assert await asyncio.wait_for(ada_queue.get(), 5) == {"type": "balance"}
            assert bob_queue.empty()  # each user hears only their own updates
    finally:
        await api.close()
        await worker.close()


async def test_the_platform_starts_and_serves_while_redis_is_down() -> None:
    hub = RedisHub(f"redis://127.0.0.1:{_free_port()}/0")
    await hub.start()  # does not wait for Redis
    with pytest.raises(TimeoutError):
        await hub.ready(0.5)
    await hub.publish(uuid.uuid4(), [{"type": "balance"}])  # lost, and says so; no error
    async with hub.subscribe(uuid.uuid4()) as queue:
        assert queue.empty()
    await hub.close()
