"""DeFi over HTTP on the sandbox vault, with the in-process worker: the catalog, investing,
yield, withdrawing part and all, the risk rule, lock-up, refusals. Prices are fixed (ETH at
2,500 USD), so gas and fees are worked out by hand: a deposit's gas estimate is 242,000 gwei
= 0.61 USD, a redeem's 120,000 gwei = 0.30 USD; the platform fee is 0.5 % either way."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from diboas.defi.protocols import VAULTS
from diboas.defi.service import valuation
from tests.api.conftest import Mailbox
from tests.banking.helpers import balance, customer, fund, transaction_count
from tests.defi.helpers import (
    API,
    POSITIONS,
    RISK,
    STRATEGIES,
    account_balance,
    audit_actions,
    defi_client,
    services,
    settled,
)
from tests.orchestration.conftest import assert_ledger_clean


@pytest.fixture
async def app_client(
    database_url: URL, mailbox: tuple[Mailbox, int]
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    async with defi_client(database_url, mailbox[1], services()) as pair:
        yield pair


@pytest.fixture
def client(app_client: tuple[httpx.AsyncClient, FastAPI]) -> httpx.AsyncClient:
    return app_client[0]


async def _funded(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory, amount: str
) -> dict[str, Any]:
    user = await customer(client, engine)
    await fund(sessions, user["id"], amount)
    return user


async def _invest(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(POSITIONS, headers=headers, json=body)
    assert response.status_code == 201, response.text
    done = await settled(client, headers, response.json()["id"])
    assert done["status"] == "completed", done
    return response.json()


async def test_catalog_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    assert (await client.get(STRATEGIES)).status_code == 401


async def test_catalog(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    ada = await customer(client, engine)
    response = await client.get(STRATEGIES, headers=ada["headers"])
    assert response.status_code == 200, response.text
    by_id = {s["id"]: s for s in response.json()}
    core, growth = by_id["usdc-core"], by_id["usdc-growth"]
    assert (core["risk_score"], core["lockup_days"], core["min_amount"]) == (2, 0, "10.00")
    assert (growth["risk_score"], growth["lockup_days"], growth["min_amount"]) == (4, 30, "100.00")
    # No share price history yet: the configured figures.
    assert (core["apy"], core["apy_source"]) == ("0.05", "configured")
    assert core["protocol"] == "erc4626" and core["asset"] == "USDC" and core["available"]
    assert core["share_price"] == "1.000000"


async def test_invest_earn_withdraw_part_then_all(
    app_client: tuple[httpx.AsyncClient, FastAPI], engine: AsyncEngine, sessions: SessionFactory
) -> None:
    client, app = app_client
    ada = await _funded(client, engine, sessions, "1000.00")
    headers = ada["headers"]
    body = {"strategy_id": "usdc-core", "amount": "500.00"}
    keyed = {**headers, "Idempotency-Key": f"defi-{uuid.uuid4()}"}

    accepted = await client.post(POSITIONS, headers=keyed, json=body)
    assert accepted.status_code == 201, accepted.text
    movement = accepted.json()
    assert movement["status"] == "pending" and movement["type"] == "defi_deposit"
    assert movement["fee"] == "3.11"
    assert movement["fee_breakdown"] == {"platform": "2.50", "provider": "0.00", "network": "0.61"}
    assert uuid.UUID(movement["position_id"]) and uuid.UUID(movement["id"]).version == 7
    replay = await client.post(POSITIONS, headers=keyed, json=body)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == movement

    done = await settled(client, headers, movement["id"])
    assert done["status"] == "completed" and done["domain"] == "defi" and done["fee"] == "3.11"
    assert [s["state"] for s in done["steps"]] == ["accepted", "provider_requested", "settled"]
    assert await balance(engine, ada["id"]) == Decimal("496.89")
    assert await balance(engine, ada["id"], "held") == 0
    assert await account_balance(engine, ada["id"], "defi", "USDC") == Decimal("500")
    await assert_ledger_clean(engine)

    # Yield arrives in the vault: 50 USDC on 500 shares.
    core = app.state.services[VAULTS]["core"]
    core.donate(Decimal("50"))
    positions = (await client.get(POSITIONS, headers=headers)).json()
    [position] = positions["items"]
    assert position["id"] == movement["position_id"] and position["status"] == "open"
    assert (position["shares"], position["principal"]) == ("500.000000", "500.000000")
    assert (position["value"], position["accrued_yield"]) == ("549.999999", "49.999999")
    assert positions["total_value_usd"] == "550.00"
    # Booked into the ledger by the accrual job: the unified balance shows it.
    # (The test database holds other tests' positions too: at least this one is booked.)
    assert await valuation.accrue(sessions, app.state.services, app.state.settings) >= 1
    assert await valuation.accrue(sessions, app.state.services, app.state.settings) == 0
    assert await account_balance(engine, ada["id"], "defi", "USDC") == Decimal("549.999999")
    balances = (await client.get(f"{API}/balances", headers=headers)).json()
    assert (
        balances["domains"]["defi"]["total_usd"] == "550.00" and balances["total_usd"] == "1046.89"
    )
    await assert_ledger_clean(engine)

    # Part: 100.00 USD of value (90.909091 shares), less 0.50 fee and 0.30 gas.
    part = await client.post(
        f"{POSITIONS}/{position['id']}/withdraw", headers=headers, json={"amount": "100.00"}
    )
    assert part.status_code == 201, part.text
    assert part.json()["fee"] == "0.80" and part.json()["position_id"] == position["id"]
    assert part.json()["type"] == "defi_withdraw"
    done = await settled(client, headers, part.json()["id"])
    assert done["status"] == "completed" and done["amount"] == "100.00", done
    assert await balance(engine, ada["id"]) == Decimal("596.09")
    [position] = (await client.get(POSITIONS, headers=headers)).json()["items"]
    assert (position["shares"], position["value"]) == ("409.090909", "449.999999")
    await assert_ledger_clean(engine)

    # All of it (empty body): 449.99 USD, less 2.25 fee and 0.30 gas.
    whole = await client.post(f"{POSITIONS}/{position['id']}/withdraw", headers=headers)
    assert whole.status_code == 201, whole.text
    assert whole.json()["fee"] == "2.55" and whole.json()["amount"] == "449.99"
    done = await settled(client, headers, whole.json()["id"])
    assert done["status"] == "completed", done
    assert await balance(engine, ada["id"]) == Decimal("1043.53")
    assert await account_balance(engine, ada["id"], "defi", "USDC") == 0
    [position] = (await client.get(POSITIONS, headers=headers)).json()["items"]
    assert position["status"] == "closed" and position["shares"] == "0.000000"
    again = await client.post(f"{POSITIONS}/{position['id']}/withdraw", headers=headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "position_not_open"

    history = (await client.get(f"{API}/transactions", headers=headers)).json()["items"]
    defi = [
        (t["type"], t["status"], t["amount"], t["fee"]) for t in history if t["domain"] == "defi"
    ]
    assert defi == [
        ("defi_withdraw", "completed", "449.99", "2.55"),
        ("defi_withdraw", "completed", "100.00", "0.80"),
        ("defi_deposit", "completed", "500.00", "3.11"),
    ]
    balances = (await client.get(f"{API}/balances", headers=headers)).json()
    assert balances["domains"]["defi"]["total_usd"] == "0.00" and balances["total_usd"] == "1043.53"
    await assert_ledger_clean(engine)


async def test_risk_profile_refuses_unless_acknowledged(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await _funded(client, engine, sessions, "1000.00")
    headers = ada["headers"]
    profile = await client.get(RISK, headers=headers)
    assert profile.json() == {"max_risk_score": 2, "source": "default"}

    growth = {"strategy_id": "usdc-growth", "amount": "200.00"}
    refused = await client.post(POSITIONS, headers=headers, json=growth)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "risk_acknowledgement_required"
    assert error["details"]["risk_score"] == 4 and error["details"]["max_risk_score"] == 2
    assert await balance(engine, ada["id"]) == Decimal("1000.00")
    assert await transaction_count(engine, ada["id"]) == 0
    assert "defi.risk_refused" in await audit_actions(engine, ada["id"])

    acknowledged = await client.post(
        POSITIONS, headers=headers, json={**growth, "acknowledge_risk": True}
    )
    assert acknowledged.status_code == 201, acknowledged.text
    assert "defi.risk_acknowledged" in await audit_actions(engine, ada["id"])

    # A profile accepting 4: no acknowledgement needed (and none recorded).
    assert (await client.put(RISK, headers=headers, json={"max_risk_score": 4})).status_code == 200
    before = (await audit_actions(engine, ada["id"])).count("defi.risk_acknowledged")
    ok = await client.post(POSITIONS, headers=headers, json=growth)
    assert ok.status_code == 201, ok.text
    assert (await audit_actions(engine, ada["id"])).count("defi.risk_acknowledged") == before
    # A profile of 1 refuses even the core strategy (risk 2).
    assert (await client.put(RISK, headers=headers, json={"max_risk_score": 1})).status_code == 200
    core = await client.post(
        POSITIONS, headers=headers, json={"strategy_id": "usdc-core", "amount": "50.00"}
    )
    assert core.status_code == 422
    assert core.json()["error"]["code"] == "risk_acknowledgement_required"
    bad = await client.put(RISK, headers=headers, json={"max_risk_score": 6})
    assert bad.status_code == 422
    for transaction_id in (acknowledged.json()["id"], ok.json()["id"]):
        assert (await settled(client, headers, transaction_id))["status"] == "completed"
    await assert_ledger_clean(engine)


async def test_lockup_refuses_early_withdrawal(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await _funded(client, engine, sessions, "500.00")
    headers = ada["headers"]
    movement = await _invest(
        client,
        headers,
        {"strategy_id": "usdc-growth", "amount": "200.00", "acknowledge_risk": True},
    )
    before = await balance(engine, ada["id"])
    refused = await client.post(f"{POSITIONS}/{movement['position_id']}/withdraw", headers=headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "position_locked"
    assert "locked_until" in refused.json()["error"]["details"]
    assert await balance(engine, ada["id"]) == before

    # Once the lock-up is over (moved into the past here), the position can be withdrawn.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE defi_positions SET locked_until = now() - interval '1 second' WHERE id = :id"
            ),
            {"id": movement["position_id"]},
        )
    out = await client.post(f"{POSITIONS}/{movement['position_id']}/withdraw", headers=headers)
    assert out.status_code == 201, out.text
    assert (await settled(client, headers, out.json()["id"]))["status"] == "completed"
    await assert_ledger_clean(engine)


async def test_apy_from_share_price_history(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    ada = await customer(client, engine)
    # The vault's share price was 0.99 ten days ago and is 1.000000 now.
    async with engine.begin() as conn:
        await conn.execute(
            text("""INSERT INTO defi_share_prices (strategy_id, at, price)
                    VALUES ('usdc-core', now() - interval '10 days', 0.99)""")
        )
    try:
        strategies = (await client.get(STRATEGIES, headers=ada["headers"])).json()
    finally:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "DELETE FROM defi_share_prices WHERE price = 0.99 AND strategy_id = 'usdc-core'"
                )
            )
    core = next(s for s in strategies if s["id"] == "usdc-core")
    # (1 / 0.99 - 1) * 365 / 10, simple annualisation.
    assert core["apy_source"] == "share_price_history"
    assert core["apy"] == "0.3687"


async def test_two_withdrawals_of_one_position_at_once(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await _funded(client, engine, sessions, "200.00")
    headers = ada["headers"]
    movement = await _invest(client, headers, {"strategy_id": "usdc-core", "amount": "100.00"})
    path = f"{POSITIONS}/{movement['position_id']}/withdraw"
    first, second = await asyncio.gather(
        client.post(path, headers=headers), client.post(path, headers=headers)
    )
    assert sorted([first.status_code, second.status_code]) == [201, 409], (first.text, second.text)
    accepted = first if first.status_code == 201 else second
    assert (await settled(client, headers, accepted.json()["id"]))["status"] == "completed"
    assert await account_balance(engine, ada["id"], "defi", "USDC") == 0
    await assert_ledger_clean(engine)


async def test_insufficient_funds_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await _funded(client, engine, sessions, "100.00")
    response = await client.post(
        POSITIONS, headers=ada["headers"], json={"strategy_id": "usdc-core", "amount": "100.00"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "insufficient_funds"
    assert await balance(engine, ada["id"]) == Decimal("100.00")
    assert await balance(engine, ada["id"], "held") == 0
    assert await transaction_count(engine, ada["id"]) == 0
    assert (await client.get(POSITIONS, headers=ada["headers"])).json()["items"] == []


async def test_investing_needs_kyc(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    eve = await customer(client, engine, tier=0)
    await fund(sessions, eve["id"], "100.00")  # e.g. received from another user
    response = await client.post(
        POSITIONS, headers=eve["headers"], json={"strategy_id": "usdc-core", "amount": "50.00"}
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "kyc_required"
    assert await balance(engine, eve["id"]) == Decimal("100.00")
    assert await transaction_count(engine, eve["id"]) == 0


async def test_another_users_position_is_not_found(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await _funded(client, engine, sessions, "100.00")
    movement = await _invest(
        client, ada["headers"], {"strategy_id": "usdc-core", "amount": "50.00"}
    )
    eve = await customer(client, engine)
    path = f"{POSITIONS}/{movement['position_id']}"
    assert (await client.get(path, headers=eve["headers"])).status_code == 404
    stolen = await client.post(f"{path}/withdraw", headers=eve["headers"])
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "position_not_found"
    assert (await client.get(path, headers=ada["headers"])).status_code == 200
    assert (
        await client.get(f"{POSITIONS}/{uuid.uuid4()}", headers=ada["headers"])
    ).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"strategy_id": "usdc-core", "amount": 50},
        {"strategy_id": "usdc-core", "amount": "0"},
        {"strategy_id": "usdc-core", "amount": "-5.00"},
        {"strategy_id": "usdc-core", "amount": "50.001"},
        {"strategy_id": "usdc-core", "amount": "5e1"},
        {"strategy_id": "usdc-core", "amount": "50\u0000"},
        {"strategy_id": "usdc-core"},
        {"strategy_id": "usdc-core", "amount": "50.00", "shares": "1"},
        {"strategy_id": "USDC CORE", "amount": "50.00"},
        {"strategy_id": "usdc-core", "amount": "5.00"},  # below the minimum (10.00)
        {"strategy_id": "usdc-core", "amount": "50.00", "funding": {"method": "ach"}},
        {
            "strategy_id": "usdc-core",
            "amount": "50.00",
            "funding": {
                "method": "card",
                "bank_account_id": "01a213c6-4660-7b83-bcf2-e6cfea85337b",
            },
        },
        {"strategy_id": "usdc-core", "amount": "50.00", "funding": {"method": "wire"}},
    ],
)
async def test_bad_investments_are_422(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory, body: dict[str, Any]
) -> None:
    ada = await _funded(client, engine, sessions, "100.00")
    response = await client.post(POSITIONS, headers=ada["headers"], json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"] and "request_id" in error
    assert await transaction_count(engine, ada["id"]) == 0


async def test_unknown_strategy_and_bad_withdrawals(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await _funded(client, engine, sessions, "100.00")
    headers = ada["headers"]
    unknown = await client.post(
        POSITIONS, headers=headers, json={"strategy_id": "no-such", "amount": "50.00"}
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "strategy_not_found"
    movement = await _invest(client, headers, {"strategy_id": "usdc-core", "amount": "50.00"})
    path = f"{POSITIONS}/{movement['position_id']}/withdraw"
    for body, code in (
        ({"amount": "50.01"}, "amount_exceeds_position"),
        ({"amount": "0.30"}, "amount_too_small"),  # fee 0.01 + gas 0.30
        ({"amount": 5}, "validation_error"),
        ({"amount": "1", "all": True}, "validation_error"),
    ):
        response = await client.post(path, headers=headers, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["code"] == code, (body, response.text)
    await assert_ledger_clean(engine)


async def test_a_withdrawal_replayed_with_its_key_is_made_once(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await _funded(client, engine, sessions, "200.00")
    headers = ada["headers"]
    movement = await _invest(client, headers, {"strategy_id": "usdc-core", "amount": "100.00"})
    path = f"{POSITIONS}/{movement['position_id']}/withdraw"
    keyed = {**headers, "Idempotency-Key": f"out-{uuid.uuid4()}"}
    first = await client.post(path, headers=keyed, json={"amount": "40.00"})
    assert first.status_code == 201, first.text
    replay = await client.post(path, headers=keyed, json={"amount": "40.00"})
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    other = await client.post(path, headers=keyed, json={"amount": "41.00"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert (await settled(client, headers, first.json()["id"]))["status"] == "completed"
    history = (await client.get(f"{API}/transactions", headers=headers)).json()["items"]
    assert [t["type"] for t in history].count("defi_withdraw") == 1
    [position] = (await client.get(POSITIONS, headers=headers)).json()["items"]
    assert position["value"] == "60.000000"
    await assert_ledger_clean(engine)
