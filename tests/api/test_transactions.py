"""Transaction history over HTTP: cursor pagination that walks every item exactly once,
filters, one transaction by id, and another user's transaction as 404."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from diboas.kit.ids import uuid7
from tests.banking.helpers import API, customer, fund

TRANSACTIONS = f"{API}/transactions"


async def _send(
    client: httpx.AsyncClient, sender: dict[str, Any], recipient: dict[str, Any], amount: str
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/banking/transfers",
        headers=sender["headers"],
        json={"recipient_email": recipient["email"], "amount": amount, "currency": "USD"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _walk(
    client: httpx.AsyncClient, headers: dict[str, str], limit: int, **params: str
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        query: dict[str, Any] = {"limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get(TRANSACTIONS, headers=headers, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


@pytest.fixture
async def two_users(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Ada sends Bob seven transfers and Bob sends one back."""
    ada, bob = await customer(client, engine), await customer(client, engine)
    await fund(sessions, ada["id"], "100.00")
    sent = [(await _send(client, ada, bob, f"{n}.00"))["id"] for n in range(1, 8)]
    back = await _send(client, bob, ada, "2.50")
    ada["received"] = back["related_transaction_id"]  # Ada's side of Bob's transfer
    return ada, bob, sent


@pytest.mark.parametrize("limit", [1, 3, 8, 100])
async def test_pagination_walks_every_item_exactly_once_newest_first(
    client: httpx.AsyncClient,
    two_users: tuple[dict[str, Any], dict[str, Any], list[str]],
    limit: int,
) -> None:
    ada, _, sent = two_users
    walked = await _walk(client, ada["headers"], limit)
    ids = [t["id"] for t in walked]
    assert len(ids) == len(set(ids)) == 8
    assert set(ids) == {*sent, ada["received"]}
    order = [(datetime.fromisoformat(t["created_at"]), uuid.UUID(t["id"])) for t in walked]
    assert order == sorted(order, reverse=True)
    assert ids[0] == ada["received"]  # the newest


async def test_the_default_page_is_20_and_the_limit_is_bounded(
    client: httpx.AsyncClient, two_users: tuple[dict[str, Any], dict[str, Any], list[str]]
) -> None:
    ada, _, _ = two_users
    page = (await client.get(TRANSACTIONS, headers=ada["headers"])).json()
    assert len(page["items"]) == 8 and page["next_cursor"] is None
    for bad in ("0", "101", "ten", "-1"):
        response = await client.get(TRANSACTIONS, headers=ada["headers"], params={"limit": bad})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "validation_error"


async def test_filters_by_type_status_and_time(
    client: httpx.AsyncClient, two_users: tuple[dict[str, Any], dict[str, Any], list[str]]
) -> None:
    ada, bob, sent = two_users
    outgoing = await _walk(client, ada["headers"], 3, type="transfer_out")
    assert {t["id"] for t in outgoing} == set(sent)
    incoming = await _walk(client, ada["headers"], 3, type="transfer_in")
    assert [t["id"] for t in incoming] == [ada["received"]]
    assert await _walk(client, ada["headers"], 3, status="pending") == []
    assert len(await _walk(client, ada["headers"], 3, status="completed")) == 8

    everything = await _walk(client, bob["headers"], 100)
    oldest = min(datetime.fromisoformat(t["created_at"]) for t in everything)
    newest = max(datetime.fromisoformat(t["created_at"]) for t in everything)
    since = await _walk(client, bob["headers"], 2, since=newest.isoformat())
    assert [t["created_at"] for t in since] == [t["created_at"] for t in everything[: len(since)]]
    assert all(datetime.fromisoformat(t["created_at"]) >= newest for t in since)
    until = await _walk(client, bob["headers"], 2, until=oldest.isoformat())
    assert until == []
    window = await _walk(
        client,
        bob["headers"],
        2,
        since=(oldest - timedelta(seconds=1)).isoformat(),
        until=(newest + timedelta(seconds=1)).isoformat(),
    )
    assert len(window) == len(everything) == 8


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"type": "teleport"}, "validation_error"),
        ({"status": "done"}, "validation_error"),
        ({"since": "yesterday"}, "validation_error"),
        ({"since": "2026-01-01T00:00:00"}, "invalid_request"),
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "invalid_request"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"cursor": "eyJhdCI6IDF9"}, "invalid_cursor"),  # base64 of {"at": 1}
    ],
)
async def test_malformed_filters_and_cursors_are_422(
    client: httpx.AsyncClient, engine: AsyncEngine, params: dict[str, str], code: str
) -> None:
    ada = await customer(client, engine)
    response = await client.get(TRANSACTIONS, headers=ada["headers"], params=params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


async def test_one_transaction_by_id_is_only_its_owners(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada, bob, eve = [await customer(client, engine) for _ in range(3)]
    await fund(sessions, ada["id"], "10.00")
    sent = await _send(client, ada, bob, "4.00")
    mine = await client.get(f"{TRANSACTIONS}/{sent['id']}", headers=ada["headers"])
    assert mine.status_code == 200 and mine.json() == sent
    for stranger in (bob, eve):  # bob has his own side of it, under another id
        response = await client.get(f"{TRANSACTIONS}/{sent['id']}", headers=stranger["headers"])
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    for unknown in (uuid7(), uuid.uuid4()):
        response = await client.get(f"{TRANSACTIONS}/{unknown}", headers=ada["headers"])
        assert response.status_code == 404
    malformed = await client.get(f"{TRANSACTIONS}/not-an-id", headers=ada["headers"])
    assert malformed.status_code == 422
    assert malformed.json()["error"]["code"] == "validation_error"
    assert (await client.get(f"{TRANSACTIONS}/{sent['id']}")).status_code == 401


async def test_history_reads_need_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(TRANSACTIONS)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_timestamps_never_run_backwards(
    client: httpx.AsyncClient, two_users: tuple[dict[str, Any], dict[str, Any], list[str]]
) -> None:
    ada, _, _ = two_users
    for item in await _walk(client, ada["headers"], 100):
        created = datetime.fromisoformat(item["created_at"])
        assert datetime.fromisoformat(item["updated_at"]) >= created
        assert datetime.fromisoformat(item["completed_at"]) >= created
