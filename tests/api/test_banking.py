"""Banking over HTTP: deposits (card and ACH) settled by the in-process worker, withdrawals
(hold, payout, capture or release), instant P2P transfers, idempotency keys, fee quotes,
linked bank accounts — on a real PostgreSQL, with the ledger verified at the end."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from diboas.ledger.verify import verify_ledger
from tests.api.conftest import sign_in
from tests.banking.helpers import (
    API,
    balance,
    customer,
    fund,
    link_account,
    settled,
    transaction_count,
)

DEPOSITS = f"{API}/banking/deposits"
WITHDRAWALS = f"{API}/banking/withdrawals"
TRANSFERS = f"{API}/banking/transfers"


# --- deposits ------------------------------------------------------------------------------------


async def _metric(client: httpx.AsyncClient, name: str, **labels: str) -> float:
    text_format = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text_format):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def test_a_card_deposit_settles_and_credits_the_amount_less_the_fee(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada = await customer(client, engine)
    completed = {"type": "deposit", "status": "completed", "domain": "banking"}
    completed_before = await _metric(client, "diboas_transactions_total", **completed)
    revenue_before = await _metric(
        client, "diboas_fee_revenue_total", operation="deposit", currency="USD"
    )
    response = await client.post(
        DEPOSITS, headers=ada["headers"], json={"amount": "100.00", "currency": "USD"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending"
    assert body["type"] == "deposit" and body["method"] == "card"
    assert body["amount"] == "100.00" and body["currency"] == "USD"
    # Card: 2.9 % + $0.30 to the processor, 0.5 % platform fee.
    assert body["fee"] == "3.70"
    assert body["fee_breakdown"] == {"platform": "0.50", "provider": "3.20", "network": "0.00"}
    assert uuid.UUID(body["id"]).version == 7

    done = await settled(client, ada["headers"], body["id"])
    assert done["status"] == "completed"
    assert done["completed_at"] is not None
    assert await balance(engine, ada["id"]) == Decimal("96.30")
    # Counted once settled: the transaction, and the platform's share of the fee as revenue
    # (the processor's $3.20 is owed to the processor).
    assert await _metric(client, "diboas_transactions_total", **completed) == completed_before + 1
    revenue = await _metric(client, "diboas_fee_revenue_total", operation="deposit", currency="USD")
    assert revenue == pytest.approx(revenue_before + 0.50)


@pytest.mark.parametrize(
    ("payment_method", "failure_code"),
    [
        ("pm_card_chargeDeclined", "card_declined"),
        ("pm_card_insufficientFunds", "insufficient_funds"),
    ],
)
async def test_a_declined_card_fails_the_deposit_and_credits_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, payment_method: str, failure_code: str
) -> None:
    ada = await customer(client, engine)
    response = await client.post(
        DEPOSITS,
        headers=ada["headers"],
        json={"amount": "50.00", "currency": "USD", "payment_method": payment_method},
    )
    assert response.status_code == 201, response.text
    done = await settled(client, ada["headers"], response.json()["id"])
    assert done["status"] == "failed"
    assert done["failure_code"] == failure_code
    assert done["failure_reason"]
    assert await balance(engine, ada["id"]) == 0
    async with engine.connect() as conn:
        entries = (
            await conn.execute(
                text("SELECT count(*) FROM entries WHERE reference = :r"),
                {"r": f"txn:{done['id']}"},
            )
        ).scalar_one()
    assert entries == 0


async def test_an_ach_deposit_from_a_linked_account_settles_free(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada = await customer(client, engine)
    bank = await link_account(client, ada["headers"])
    response = await client.post(
        DEPOSITS,
        headers=ada["headers"],
        json={
            "amount": "250.00",
            "currency": "USD",
            "method": "ach",
            "bank_account_id": bank["id"],
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["method"] == "ach" and body["fee"] == "0.00"
    assert body["bank_account_id"] == bank["id"]
    # ACH is pending at the provider first; the job polls it until it settles.
    done = await settled(client, ada["headers"], body["id"])
    assert done["status"] == "completed"
    assert await balance(engine, ada["id"]) == Decimal("250.00")


async def test_an_ach_deposit_from_a_closed_account_fails(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada = await customer(client, engine)
    bank = await link_account(client, ada["headers"], account_number="9876540002")
    response = await client.post(
        DEPOSITS,
        headers=ada["headers"],
        json={"amount": "25.00", "currency": "USD", "method": "ach", "bank_account_id": bank["id"]},
    )
    done = await settled(client, ada["headers"], response.json()["id"])
    assert done["status"] == "failed" and done["failure_code"] == "account_closed"
    assert await balance(engine, ada["id"]) == 0


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"amount": "10.00", "currency": "EUR"}, "unsupported_currency"),
        ({"amount": "10.001", "currency": "USD"}, "invalid_amount"),
        ({"amount": "1e3", "currency": "USD"}, "invalid_amount"),
        ({"amount": "0", "currency": "USD"}, "invalid_amount"),
        ({"amount": "-5.00", "currency": "USD"}, "invalid_amount"),
        ({"amount": 10, "currency": "USD"}, "validation_error"),
        ({"amount": "10.00"}, "validation_error"),
        ({"amount": "10.00", "currency": "usd"}, "validation_error"),
        ({"amount": "10.00", "currency": "USD", "method": "ach"}, "validation_error"),
        ({"amount": "10.00", "currency": "USD", "method": "wire"}, "validation_error"),
        (
            {"amount": "10.00", "currency": "USD", "payment_method": "4242424242424242"},
            "validation_error",
        ),
        ({"amount": "10.00", "currency": "USD", "status": "completed"}, "validation_error"),
        # The card fee ($0.32) would take the whole deposit.
        ({"amount": "0.30", "currency": "USD"}, "amount_too_small"),
    ],
)
async def test_malformed_or_unsupported_deposits_are_422_and_record_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, payload: dict[str, object], code: str
) -> None:
    ada = await customer(client, engine)
    response = await client.post(DEPOSITS, headers=ada["headers"], json=payload)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code
    assert await transaction_count(engine, ada["id"]) == 0


async def test_tier_0_cannot_deposit(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    newcomer = await customer(client, engine, tier=0)
    response = await client.post(
        DEPOSITS, headers=newcomer["headers"], json={"amount": "10.00", "currency": "USD"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "kyc_required"
    assert await transaction_count(engine, newcomer["id"]) == 0


async def test_an_ach_deposit_from_another_users_bank_account_is_404(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada, eve = await customer(client, engine), await customer(client, engine)
    bank = await link_account(client, ada["headers"])
    response = await client.post(
        DEPOSITS,
        headers=eve["headers"],
        json={"amount": "10.00", "currency": "USD", "method": "ach", "bank_account_id": bank["id"]},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "bank_account_not_found"


# --- withdrawals -----------------------------------------------------------------------------------


async def test_a_withdrawal_holds_then_pays_out_and_captures(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(client, engine)
    await fund(sessions, ada["id"], "100.00")
    bank = await link_account(client, ada["headers"])
    response = await client.post(
        WITHDRAWALS,
        headers=ada["headers"],
        json={"amount": "40.00", "currency": "USD", "bank_account_id": bank["id"]},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending" and body["type"] == "withdrawal"
    # $0.25 ACH payout + 0.1 % + $0.50 platform fee.
    assert body["fee"] == "0.79"
    done = await settled(client, ada["headers"], body["id"])
    assert done["status"] == "completed"
    assert await balance(engine, ada["id"]) == Decimal("59.21")
    assert await balance(engine, ada["id"], "held") == 0
    async with engine.connect() as conn:
        hold = (
            await conn.execute(
                text("SELECT status, captured, released FROM holds WHERE reference = :r"),
                {"r": f"txn:{body['id']}"},
            )
        ).one()
    # The payout and its fee leave the hold together, in one ledger entry.
    assert (hold.status, hold.captured, hold.released) == ("captured", Decimal("40.79"), 0)


async def test_a_failed_payout_releases_the_hold(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(client, engine)
    await fund(sessions, ada["id"], "100.00")
    bank = await link_account(client, ada["headers"], account_number="5550002")
    response = await client.post(
        WITHDRAWALS,
        headers=ada["headers"],
        json={"amount": "40.00", "currency": "USD", "bank_account_id": bank["id"]},
    )
    assert response.status_code == 201, response.text
    # The hold is in place while the payout is pending.
    assert await balance(engine, ada["id"]) + await balance(engine, ada["id"], "held") == Decimal(
        "100.00"
    )
    done = await settled(client, ada["headers"], response.json()["id"])
    assert done["status"] == "failed" and done["failure_code"] == "account_closed"
    assert await balance(engine, ada["id"]) == Decimal("100.00")
    assert await balance(engine, ada["id"], "held") == 0


async def test_a_withdrawal_beyond_the_balance_is_refused_at_once(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(client, engine)
    await fund(sessions, ada["id"], "10.00")
    bank = await link_account(client, ada["headers"])
    response = await client.post(
        WITHDRAWALS,
        headers=ada["headers"],
        # $10.00 is there, but not $10.00 plus the fee.
        json={"amount": "10.00", "currency": "USD", "bank_account_id": bank["id"]},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "insufficient_funds"
    assert await balance(engine, ada["id"]) == Decimal("10.00")
    assert await transaction_count(engine, ada["id"]) == 0


async def test_a_withdrawal_to_another_users_or_a_removed_account_is_404(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada, eve = await customer(client, engine), await customer(client, engine)
    await fund(sessions, eve["id"], "100.00")
    ada_bank = await link_account(client, ada["headers"])
    eve_bank = await link_account(client, eve["headers"])
    removed = await client.delete(
        f"{API}/banking/bank-accounts/{eve_bank['id']}", headers=eve["headers"]
    )
    assert removed.status_code == 204
    for bank_id in (ada_bank["id"], eve_bank["id"]):
        response = await client.post(
            WITHDRAWALS,
            headers=eve["headers"],
            json={"amount": "5.00", "currency": "USD", "bank_account_id": bank_id},
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "bank_account_not_found"
    assert await balance(engine, eve["id"]) == Decimal("100.00")


# --- transfers -------------------------------------------------------------------------------------


async def test_a_transfer_completes_at_once_and_both_sides_see_it(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada, bob = await customer(client, engine), await customer(client, engine, name="Bob Stone")
    await fund(sessions, ada["id"], "80.00")
    response = await client.post(
        TRANSFERS,
        headers=ada["headers"],
        json={
            "recipient_email": bob["email"].upper(),
            "amount": "30.50",
            "currency": "USD",
            "note": "dinner",
        },
    )
    assert response.status_code == 201, response.text
    sent = response.json()
    assert sent["status"] == "completed" and sent["type"] == "transfer_out"
    assert sent["fee"] == "0.00"
    assert sent["counterparty_email"] == bob["email"] and sent["note"] == "dinner"
    assert await balance(engine, ada["id"]) == Decimal("49.50")
    assert await balance(engine, bob["id"]) == Decimal("30.50")

    ada_items = (await client.get(f"{API}/transactions", headers=ada["headers"])).json()["items"]
    bob_items = (await client.get(f"{API}/transactions", headers=bob["headers"])).json()["items"]
    assert [t["id"] for t in ada_items] == [sent["id"]]
    assert len(bob_items) == 1
    received = bob_items[0]
    assert received["type"] == "transfer_in" and received["amount"] == "30.50"
    assert received["counterparty_email"] == ada["email"]
    assert received["related_transaction_id"] == sent["id"]
    assert sent["related_transaction_id"] == received["id"]
    async with engine.connect() as conn:
        audited = (
            await conn.execute(
                text(
                    "SELECT actor_id FROM audit_log WHERE action = 'banking.transfer' AND subject_id = :id"
                ),
                {"id": sent["id"]},
            )
        ).scalar_one()
    assert audited == ada["id"]


async def _audited(
    engine: AsyncEngine, action: str, actor_id: uuid.UUID
) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT outcome, details FROM audit_log WHERE action = :a AND actor_id = :id"),
            {"a": action, "id": actor_id},
        )
        return [dict(r._mapping) for r in rows]


@pytest.mark.parametrize(
    "case", ["self", "unknown", "insufficient", "limit", "tier0", "sanctioned"]
)
async def test_refused_transfers_are_4xx_and_change_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory, case: str
) -> None:
    ada = await customer(client, engine, tier=0 if case == "tier0" else 1)
    # A name on the sanctions list kept as data (compliance/data/sanctions.csv).
    bob = await customer(
        client, engine, name="Pavel Ostrovetsky" if case == "sanctioned" else "Bob Stone"
    )
    # Enough for the limit case to pass the balance check and meet the limit.
    funded = "100.00" if case == "insufficient" else "6000.00"
    await fund(sessions, ada["id"], funded)
    recipient, amount = bob["email"], "10.00"
    expected = {
        "self": (422, "self_transfer"),
        "unknown": (404, "recipient_not_found"),
        "insufficient": (422, "insufficient_funds"),
        "limit": (422, "limit_exceeded"),
        "tier0": (403, "kyc_required"),
        "sanctioned": (422, "recipient_not_allowed"),
    }[case]
    if case == "self":
        recipient = ada["email"]
    elif case == "unknown":
        recipient = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    elif case == "insufficient":
        amount = "100.01"
    elif case == "limit":
        amount = "5000.01"  # tier 1: $5,000 of transfers a day
    response = await client.post(
        TRANSFERS,
        headers=ada["headers"],
        json={"recipient_email": recipient, "amount": amount, "currency": "USD"},
    )
    assert (response.status_code, response.json()["error"]["code"]) == expected
    if case == "limit":
        assert Decimal(response.json()["error"]["details"]["remaining_usd"]) == 5000
    assert await balance(engine, ada["id"]) == Decimal(funded)
    assert await balance(engine, bob["id"]) == 0
    assert await transaction_count(engine, ada["id"]) == 0
    assert await transaction_count(engine, bob["id"]) == 0
    # Compliance refusals are audited even though the movement's transaction rolled back.
    refusals = await _audited(engine, "limits.refused", ada["id"])
    assert [r["outcome"] for r in refusals] == (["refused"] if case in ("limit", "tier0") else [])
    screened = await _audited(engine, "screening.refused", ada["id"])
    assert len(screened) == (1 if case == "sanctioned" else 0)
    assert await _audited(engine, "banking.transfer", ada["id"]) == []


async def test_a_note_with_a_nul_character_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada, bob = await customer(client, engine), await customer(client, engine)
    response = await client.post(
        TRANSFERS,
        headers=ada["headers"],
        json={
            "recipient_email": bob["email"],
            "amount": "1.00",
            "currency": "USD",
            "note": "a\x00b",
        },
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_a_role_without_money_permissions_is_403(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    support = await customer(client, engine)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = 'support' WHERE id = :id"), {"id": support["id"]}
        )
    fresh = await sign_in(client, support["email"])
    response = await client.post(
        DEPOSITS, headers=fresh["headers"], json={"amount": "10.00", "currency": "USD"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert (
        await client.post(DEPOSITS, json={"amount": "1.00", "currency": "USD"})
    ).status_code == 401


async def test_logs_never_carry_an_account_number(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    sessions: SessionFactory,
    capfd: pytest.CaptureFixture[str],
) -> None:
    number = "31415926535"
    ada = await customer(client, engine)
    await fund(sessions, ada["id"], "50.00")
    bank = await link_account(client, ada["headers"], account_number=number)
    withdrawal = await client.post(
        WITHDRAWALS,
        headers=ada["headers"],
        json={"amount": "10.00", "currency": "USD", "bank_account_id": bank["id"]},
    )
    assert (await settled(client, ada["headers"], withdrawal.json()["id"]))["status"] == "completed"
    refused = await client.post(
        f"{API}/banking/bank-accounts",
        headers=ada["headers"],
        json={
            "holder_name": "A",
            "bank_name": "B",
            "routing_number": "1",
            "account_number": number,
        },
    )
    assert refused.status_code == 422
    out, err = capfd.readouterr()
    assert "payment settled" in out + err  # the worker's log lines were captured
    assert number not in out + err
    assert ada["tokens"]["access_token"] not in out + err


# --- the whole flow, and the ledger after it ------------------------------------------------------------


async def test_deposit_transfer_withdraw_then_the_ledger_verifies(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    ada, bob = await customer(client, engine), await customer(client, engine)
    bank = await link_account(client, ada["headers"])
    deposit = await client.post(
        DEPOSITS,
        headers={**ada["headers"], "Idempotency-Key": str(uuid.uuid4())},
        json={
            "amount": "500.00",
            "currency": "USD",
            "method": "ach",
            "bank_account_id": bank["id"],
        },
    )
    assert (await settled(client, ada["headers"], deposit.json()["id"]))["status"] == "completed"
    sent = await client.post(
        TRANSFERS,
        headers=ada["headers"],
        json={"recipient_email": bob["email"], "amount": "120.00", "currency": "USD"},
    )
    assert sent.status_code == 201
    withdrawal = await client.post(
        WITHDRAWALS,
        headers=ada["headers"],
        json={"amount": "100.00", "currency": "USD", "bank_account_id": bank["id"]},
    )
    assert withdrawal.status_code == 201
    done = await settled(client, ada["headers"], withdrawal.json()["id"])
    assert done["status"] == "completed" and done["fee"] == "0.85"
    assert await balance(engine, ada["id"]) == Decimal("279.15")
    assert await balance(engine, bob["id"]) == Decimal("120.00")

    async with engine.connect() as conn:
        report = await verify_ledger(conn)
    assert report.ok, report.summary()
    assert report.entries > 0
