"""Reversals: a returned bank debit, a chargeback and a refund take a deposit back through a
reversing entry; money already spent is owed (the account frozen), never clipped; webhooks
delivered twice and out of order change nothing more."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.banking.returns import process_returns
from diboas.db.engine import SessionFactory
from diboas.orchestration.jobs import JobContext
from tests.api.conftest import sign_in
from tests.banking.helpers import customer, link_account
from tests.orchestration.conftest import (
    API,
    approved_user,
    assert_ledger_clean,
    card_deposit,
    charges_for,
    final_state,
    states,
    usd_available,
)
from tests.orchestration.fault_proxy import FaultProxy
from tests.orchestration.webhook_signing import signed_event
from tests.providers.conftest import LOCALSTRIPE_API_KEY

CENT = Decimal("0.01")
RETURNED_ACCOUNT = "000000000004"  # the sandbox settles debits from it, then returns them


async def _usd(client: httpx.AsyncClient, account: dict[str, Any]) -> dict[str, str]:
    balances = (await client.get(f"{API}/balances", headers=account["headers"])).json()
    return next(a for a in balances["assets"] if a["asset"] == "USD" and a["domain"] == "banking")


async def _reversals_of(
    client: httpx.AsyncClient, account: dict[str, Any], deposit_id: str
) -> list[Any]:
    page = (
        await client.get(f"{API}/transactions?type=reversal", headers=account["headers"])
    ).json()
    return [t for t in page["items"] if t["related_transaction_id"] == deposit_id]


async def test_a_returned_debit_of_spent_money_is_owed_and_freezes_the_account(
    faulty_client: httpx.AsyncClient,
    engine: AsyncEngine,
    sessions: SessionFactory,
    proxy: FaultProxy,
) -> None:
    ada = await customer(faulty_client, engine)
    bob = await customer(faulty_client, engine, name="Bob Builder")
    bank = await link_account(faulty_client, ada["headers"], account_number=RETURNED_ACCOUNT)
    deposit = await faulty_client.post(
        f"{API}/banking/deposits",
        headers=ada["headers"],
        json={
            "amount": "100.00",
            "currency": "USD",
            "method": "ach",
            "bank_account_id": bank["id"],
        },
    )
    assert deposit.status_code == 201, deposit.text
    deposit_id = deposit.json()["id"]
    assert (await final_state(faulty_client, ada, deposit_id))["status"] == "completed"
    spent = await faulty_client.post(
        f"{API}/banking/transfers",
        headers=ada["headers"],
        json={"recipient_email": bob["email"], "amount": "80.00", "currency": "USD"},
    )
    assert spent.status_code == 201, spent.text

    settings = faulty_client._transport.app.state.settings  # type: ignore[attr-defined]
    await process_returns(JobContext(sessions, settings, 0, {}))  # the bank's returns report

    reversed_deposit = await final_state(faulty_client, ada, deposit_id)
    assert reversed_deposit["status"] == "reversed"
    assert reversed_deposit["failure_code"] == "R10"
    assert states(reversed_deposit)[-2:] == ["settled", "reversed"]
    [reversal] = await _reversals_of(faulty_client, ada, deposit_id)
    assert reversal["amount"] == "100.00" and reversal["status"] == "completed"
    usd = await _usd(faulty_client, ada)
    assert (usd["available"], usd["owed"], usd["value_usd"]) == ("0.00", "80.00", "-80.00")

    for path, body in (
        ("transfers", {"recipient_email": bob["email"], "amount": "1.00", "currency": "USD"}),
        ("withdrawals", {"amount": "1.00", "currency": "USD", "bank_account_id": bank["id"]}),
    ):
        refused = await faulty_client.post(
            f"{API}/banking/{path}", headers=ada["headers"], json=body
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "account_frozen"

    # New money pays the debt first; then the account moves again.
    paid = await card_deposit(faulty_client, ada, "100.00")
    assert (await final_state(faulty_client, ada, str(paid["id"])))["status"] == "completed"
    usd = await _usd(faulty_client, ada)
    assert usd["owed"] == "0.00"
    assert Decimal(usd["available"]) == Decimal("100.00") - Decimal(paid["fee"]) - Decimal("80.00")
    again = await faulty_client.post(
        f"{API}/banking/transfers",
        headers=ada["headers"],
        json={"recipient_email": bob["email"], "amount": "1.00", "currency": "USD"},
    )
    assert again.status_code == 201, again.text

    await process_returns(JobContext(sessions, settings, 0, {}))  # reported again: once only
    assert len(await _reversals_of(faulty_client, ada, deposit_id)) == 1
    await assert_ledger_clean(engine)


async def test_a_chargeback_reverses_once_and_stale_webhooks_change_nothing(
    faulty_client: httpx.AsyncClient, engine: AsyncEngine, localstripe: str
) -> None:
    ada = await approved_user(faulty_client, engine)
    deposit = await card_deposit(faulty_client, ada, "50.00")
    deposit_id = str(deposit["id"])
    assert (await final_state(faulty_client, ada, deposit_id))["status"] == "completed"
    [intent] = await charges_for(localstripe, deposit_id)

    # Out of order: a stale "failed" event for the same payment, delivered after success, and
    # the success delivered twice, change nothing (Stripe is asked for the payment's state).
    stale = dict(intent, status="requires_payment_method")
    for kind, subject in (
        ("payment_intent.payment_failed", stale),
        ("payment_intent.succeeded", intent),
        ("payment_intent.succeeded", intent),
    ):
        body, signature = signed_event(kind, subject)
        answer = await faulty_client.post(
            f"{API}/webhooks/stripe", content=body, headers={"Stripe-Signature": signature}
        )
        assert answer.status_code == 200 and answer.json()["outcome"] == "already_settled"
    assert await usd_available(faulty_client, ada) == Decimal("50.00") - Decimal(deposit["fee"])

    dispute = {
        "id": f"dp_{uuid.uuid4().hex[:24]}",
        "object": "dispute",
        "amount": 5000,
        "currency": "usd",
        "payment_intent": intent["id"],
        "charge": f"ch_{uuid.uuid4().hex[:24]}",
        "reason": "fraudulent",
        "status": "needs_response",
        "created": int(time.time()),
    }
    outcomes = []
    for kind in ("charge.dispute.created", "charge.dispute.funds_withdrawn"):
        body, signature = signed_event(kind, dispute)
        answer = await faulty_client.post(
            f"{API}/webhooks/stripe", content=body, headers={"Stripe-Signature": signature}
        )
        assert answer.status_code == 200, answer.text
        outcomes.append(answer.json()["outcome"])
    assert outcomes == ["reversed", "already_reversed"]
    done = await final_state(faulty_client, ada, deposit_id)
    assert done["status"] == "reversed" and done["failure_code"] == "chargeback"
    usd = await _usd(faulty_client, ada)
    assert (usd["available"], usd["owed"]) == ("0.00", "0.00")
    await assert_ledger_clean(engine)


async def test_a_chargeback_won_back_returns_the_money_and_pays_the_debt_off_first(
    faulty_client: httpx.AsyncClient, engine: AsyncEngine, localstripe: str
) -> None:
    ada = await approved_user(faulty_client, engine)
    bob = await approved_user(faulty_client, engine)
    deposit = await card_deposit(faulty_client, ada, "50.00")
    deposit_id = str(deposit["id"])
    assert (await final_state(faulty_client, ada, deposit_id))["status"] == "completed"
    credited = Decimal("50.00") - Decimal(deposit["fee"])
    [intent] = await charges_for(localstripe, deposit_id)
    sent = await faulty_client.post(  # Ada spends 30 before the chargeback
        f"{API}/banking/transfers",
        headers={**ada["headers"], "Idempotency-Key": str(uuid.uuid4())},
        json={"recipient_email": bob["email"], "amount": "30.00", "currency": "USD"},
    )
    assert sent.status_code == 201, sent.text

    dispute = {
        "id": f"dp_{uuid.uuid4().hex[:24]}",
        "object": "dispute",
        "amount": 5000,
        "currency": "usd",
        "payment_intent": intent["id"],
        "charge": f"ch_{uuid.uuid4().hex[:24]}",
        "reason": "fraudulent",
        "status": "needs_response",
        "created": int(time.time()),
    }

    async def deliver(kind: str, **changes: Any) -> str:
        body, signature = signed_event(kind, {**dispute, **changes})
        answer = await faulty_client.post(
            f"{API}/webhooks/stripe", content=body, headers={"Stripe-Signature": signature}
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["outcome"])

    # A dispute lost, or still open, gives nothing back.
    assert await deliver("charge.dispute.closed", status="lost") == "ignored"
    # A dispute won that never took anything back gives nothing back.
    other = f"dp_{uuid.uuid4().hex[:24]}"
    assert await deliver("charge.dispute.closed", id=other, status="won") == "nothing_to_reinstate"
    assert (await _usd(faulty_client, ada))["available"] == str(credited - Decimal("30.00"))
    assert await deliver("charge.dispute.created") == "reversed"
    usd = await _usd(faulty_client, ada)
    owed = Decimal("30.00")  # what she spent of it (the rest was taken from her balance)
    assert (usd["available"], usd["owed"]) == ("0.00", str(owed))

    # Won: the money comes back once, whichever of the two events arrives first or again.
    assert await deliver("charge.dispute.funds_reinstated", status="won") == "reinstated"
    assert await deliver("charge.dispute.closed", status="won") == "nothing_to_reinstate"
    assert await deliver("charge.dispute.funds_reinstated", status="won") == "nothing_to_reinstate"
    usd = await _usd(faulty_client, ada)
    # What the chargeback took (the 50.00 less the deposit's fee) is back: the debt is paid
    # off first and the rest is available again, so Ada may move money out again.
    assert (usd["available"], usd["owed"]) == (str(credited - owed), "0.00")
    history = (
        await faulty_client.get(f"{API}/transactions?type=reinstatement", headers=ada["headers"])
    ).json()["items"]
    assert [(t["amount"], t["related_transaction_id"]) for t in history] == [
        (str(credited), deposit_id)
    ]
    out = await faulty_client.post(
        f"{API}/banking/transfers",
        headers={**ada["headers"], "Idempotency-Key": str(uuid.uuid4())},
        json={"recipient_email": bob["email"], "amount": "1.00", "currency": "USD"},
    )
    assert out.status_code == 201, out.text
    await assert_ledger_clean(engine)


async def test_support_refunds_part_of_a_card_deposit_through_stripe(
    faulty_client: httpx.AsyncClient, engine: AsyncEngine, localstripe: str
) -> None:
    ada = await approved_user(faulty_client, engine)
    deposit = await card_deposit(faulty_client, ada, "50.00")
    deposit_id = str(deposit["id"])
    assert (await final_state(faulty_client, ada, deposit_id))["status"] == "completed"
    support = await approved_user(faulty_client, engine)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = 'support' WHERE email = :e"), {"e": support["email"]}
        )
    support = await sign_in(faulty_client, support["email"])
    path = f"{API}/admin/transactions/{deposit_id}/refund"
    body = {"amount": "20.00", "reason": "Customer asked for part back"}
    assert (await faulty_client.post(path, headers=ada["headers"], json=body)).status_code == 403
    too_much = await faulty_client.post(
        path, headers=support["headers"], json={"amount": "60.00", "reason": "too much"}
    )
    assert too_much.status_code == 409, too_much.text
    [intent] = await charges_for(localstripe, deposit_id)
    accepted = await faulty_client.post(path, headers=support["headers"], json=body)
    assert accepted.status_code == 202, accepted.text

    for _ in range(300):
        reversals = await _reversals_of(faulty_client, ada, deposit_id)
        if reversals:
            break
        await asyncio.sleep(0.1)
    [reversal] = reversals
    assert reversal["amount"] == "20.00"
    still = (
        await faulty_client.get(f"{API}/transactions/{deposit_id}", headers=ada["headers"])
    ).json()
    assert still["status"] == "completed"  # partly refunded: the deposit stands

    auth = {"Authorization": f"Bearer {LOCALSTRIPE_API_KEY}"}
    async with httpx.AsyncClient(base_url=localstripe, headers=auth) as stripe_api:
        refunds = (await stripe_api.get("/v1/refunds", params={"limit": 100})).json()["data"]
    [refund] = [r for r in refunds if r.get("payment_intent") == intent["id"]]
    assert refund["amount"] == 2000 and refund["status"] == "succeeded"

    # The reversing entry mirrors 40 % of the deposit's: the platform gives back its fee share,
    # the customer gives back the rest of the 20.00.
    share = Decimal("0.4")
    fee = deposit["fee_breakdown"]
    platform = (Decimal(fee["platform"]) + Decimal(fee["network"])) * share
    provider = Decimal(fee["provider"]) * share
    taken = Decimal("20.00") - platform.quantize(CENT) - provider.quantize(CENT)
    expected = Decimal("50.00") - Decimal(deposit["fee"]) - taken
    assert await usd_available(faulty_client, ada) == expected
    await assert_ledger_clean(engine)
