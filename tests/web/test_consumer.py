"""The consumer app's forms, driven like a browser: the same services and rules as the API
(limits, fees, KYC, idempotency), refusals shown on the form."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import STRONG_PASSWORD, sign_in, sign_up
from tests.web.helpers import (
    hidden_fields,
    post_form,
    transaction_id_of,
    web_move,
    web_sign_up,
    web_verify,
)

CARD = {"method": "card", "payment_method": "pm_card_visa"}
BANK = {
    "holder_name": "Grace Hopper",
    "bank_name": "First Test Bank",
    "routing_number": "011000015",
    "account_number": "000123456789",
}


async def wait_for_status(client: httpx.AsyncClient, transaction_id: uuid.UUID) -> str:
    """The transaction's status once it leaves pending/processing (bounded: 30 s)."""
    status = ""
    for _ in range(300):
        status = (await client.get(f"/app/transactions/{transaction_id}/status")).json()["status"]
        if status not in ("pending", "processing"):
            break
        await asyncio.sleep(0.1)
    return status


async def _transactions(engine: AsyncEngine, email: str) -> int:
    async with engine.connect() as conn:
        query = text(
            "SELECT count(*) FROM transactions t JOIN users u ON u.id = t.user_id "
            "WHERE u.email = :e"
        )
        return int((await conn.execute(query, {"e": email})).scalar_one())


async def test_sign_up_refusals_are_shown_on_the_form(client: httpx.AsyncClient) -> None:
    taken = await web_sign_up(client)
    await post_form(client, "/app/logout", {}, form_page="/app")
    weak = await post_form(
        client, "/app/signup", {"full_name": "A", "email": "a@example.com", "password": "short"}
    )
    assert weak.status_code == 422
    assert 'id="f-password-error"' in weak.text
    again = await post_form(
        client,
        "/app/signup",
        {"full_name": "B", "email": taken, "password": STRONG_PASSWORD},
    )
    assert again.status_code == 409
    assert "An account with this email exists" in again.text
    assert 'aria-invalid="true"' in again.text


async def test_a_wrong_password_is_refused_without_saying_which(
    client: httpx.AsyncClient,
) -> None:
    address = await web_sign_up(client)
    await post_form(client, "/app/logout", {}, form_page="/app")
    response = await post_form(
        client, "/app/login", {"email": address, "password": "not-the-password-at-all"}
    )
    assert response.status_code == 401
    assert "Wrong email or password" in response.text
    assert (await client.get("/app")).status_code == 303


async def test_money_waits_for_the_identity_check(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    address = await web_sign_up(client)
    refused = await web_move(client, "/app/deposit", {"amount": "20.00", **CARD})
    assert refused.status_code == 403
    assert 'role="alert"' in refused.text
    assert await _transactions(engine, address) == 0

    rejected = await web_verify(client, last_name="Reject")
    assert "We could not verify your identity" in rejected.text
    approved = await web_verify(client)
    assert "Your identity is verified (tier 1)" in approved.text
    assert (await client.get("/app")).text.count("Verify your identity") == 0


async def test_a_form_sent_twice_moves_money_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    address = await web_sign_up(client)
    await web_verify(client)
    review = await post_form(client, "/app/deposit", {"amount": "30.00", **CARD})
    data = {**hidden_fields(review.text), "step": "confirm"}
    first = transaction_id_of(await client.post("/app/deposit", data=data))
    second = transaction_id_of(await client.post("/app/deposit", data=data))
    assert first == second
    assert await _transactions(engine, address) == 1
    # A fresh form is a new deposit.
    transaction_id_of(await web_move(client, "/app/deposit", {"amount": "5.00", **CARD}))
    assert await _transactions(engine, address) == 2


async def test_bad_amounts_and_declines_are_shown_on_the_form(
    client: httpx.AsyncClient,
) -> None:
    await web_sign_up(client)
    await web_verify(client)
    for amount, message in (
        ("", "Field required"),
        ("1e3", "plain decimal"),
        ("10.001", "more than 2 decimals"),
        ("-5", "greater than zero"),
    ):
        response = await post_form(client, "/app/deposit", {"amount": amount, **CARD})
        assert response.status_code == 422, amount
        assert message in response.text, (amount, response.text)
    over = await web_move(client, "/app/deposit", {"amount": "10000.01", **CARD})
    assert over.status_code == 422
    assert "limit" in over.text.lower()


async def test_send_withdraw_and_history(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    recipient = await sign_up(client, name="Dorothy Vaughan")  # through the API
    await web_sign_up(client)
    await web_verify(client)
    # An ACH deposit from a linked account; its settlement is the worker's business.
    linked = await post_form(client, "/app/settings/bank-accounts", BANK, form_page="/app/settings")
    assert linked.headers["location"] == "/app/settings?done=bank_linked"
    settings_page = (await client.get("/app/settings")).text
    assert "First Test Bank ••••6789" in settings_page
    assert "000123456789" not in settings_page
    account_id = re.search(r"/app/settings/bank-accounts/([0-9a-f-]{36})/remove", settings_page)
    assert account_id is not None

    deposit = await web_move(
        client,
        "/app/deposit",
        {"amount": "200.00", "method": "ach", "bank_account_id": account_id.group(1)},
    )
    deposit_id = transaction_id_of(deposit)
    status = await client.get(f"/app/transactions/{deposit_id}/status")
    assert status.json()["status"] in {"pending", "processing", "completed"}

    unknown = await web_move(
        client, "/app/send", {"recipient_email": "nobody@example.com", "amount": "1.00"}
    )
    assert unknown.status_code == 404

    # The ACH deposit settles through the in-process worker before it can be spent.
    assert await wait_for_status(client, deposit_id) == "completed"
    sent = await web_move(
        client,
        "/app/send",
        {"recipient_email": recipient["email"], "amount": "25.00", "note": "<b>thanks</b>"},
    )
    page = await client.get(sent.headers["location"])
    assert "completed" in page.text
    assert "&lt;b&gt;thanks&lt;/b&gt;" in page.text

    withdrawn = await web_move(
        client, "/app/withdraw", {"amount": "50.00", "bank_account_id": account_id.group(1)}
    )
    transaction_id_of(withdrawn)

    history = await client.get("/app/transactions")
    assert history.text.count('data-testid="transaction-row"') == 3
    only_sent = await client.get("/app/transactions", params={"type": "transfer_out"})
    assert only_sent.text.count('data-testid="transaction-row"') == 1
    assert recipient["email"] in only_sent.text
    none_failed = await client.get("/app/transactions", params={"status": "failed"})
    assert "No transactions yet" in none_failed.text
    future = await client.get("/app/transactions", params={"since": "2999-01-01"})
    assert "No transactions yet" in future.text

    # The recipient sees the money through the API.
    theirs = await sign_in(client, recipient["email"])
    balances = (await client.get("/api/v1/balances", headers=theirs["headers"])).json()
    assert balances["total_usd"] == "25.00"

    removed = await client.post(
        f"/app/settings/bank-accounts/{account_id.group(1)}/remove",
        data=hidden_fields((await client.get("/app/settings")).text),
    )
    assert removed.headers["location"] == "/app/settings?done=bank_removed"
    assert "No bank account is linked" in (await client.get("/app/settings")).text


async def test_another_users_transaction_is_not_found(client: httpx.AsyncClient) -> None:
    await web_sign_up(client)
    await web_verify(client)
    mine = transaction_id_of(await web_move(client, "/app/deposit", {"amount": "9.00", **CARD}))
    await post_form(client, "/app/logout", {}, form_page="/app")
    await web_sign_up(client)
    assert (await client.get(f"/app/transactions/{mine}")).status_code == 404
    assert (await client.get(f"/app/transactions/{mine}/status")).status_code == 404
    assert (await client.get("/app/transactions/not-a-uuid")).status_code == 404


async def test_changing_the_password_signs_out_every_other_session(
    client: httpx.AsyncClient,
) -> None:
    address = await web_sign_up(client)
    api = await sign_in(client, address)
    wrong = await post_form(
        client,
        "/app/settings/password",
        {"current_password": "not-my-password-1", "new_password": "another-good-passphrase-2"},
        form_page="/app/settings",
    )
    assert wrong.status_code == 401
    assert 'id="f-current_password-error"' in wrong.text
    changed = await post_form(
        client,
        "/app/settings/password",
        {"current_password": STRONG_PASSWORD, "new_password": "another-good-passphrase-2"},
        form_page="/app/settings",
    )
    assert changed.headers["location"] == "/app/settings?done=password_changed"
    assert (await client.get("/app")).status_code == 200  # this browser stays signed in
    assert (await client.get("/api/v1/me", headers=api["headers"])).status_code == 401


async def test_revoking_the_current_session_signs_the_browser_out(
    client: httpx.AsyncClient,
) -> None:
    await web_sign_up(client)
    page = (await client.get("/app/settings")).text
    session_id = re.search(r"/app/settings/sessions/([0-9a-f-]{36})/revoke", page)
    assert session_id is not None
    response = await client.post(
        f"/app/settings/sessions/{session_id.group(1)}/revoke", data=hidden_fields(page)
    )
    assert response.headers["location"] == "/app/login?signed_out=1"
    assert (await client.get("/app")).status_code == 303


async def test_the_fee_is_quoted_before_and_charged_as_quoted(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await web_sign_up(client)
    await web_verify(client)
    review = await post_form(client, "/app/deposit", {"amount": "100.00", **CARD})
    assert review.status_code == 200
    # Card: 2.9 % + 0.30 (provider) and 0.5 % (platform) of 100.00.
    assert 'data-testid="review-fee">3.70 USD' in review.text
    assert "96.30 USD" in review.text
    fields = hidden_fields(review.text)
    created = transaction_id_of(
        await client.post("/app/deposit", data={**fields, "step": "confirm"})
    )
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT fee, quote_id FROM transactions WHERE id = :id"), {"id": created}
            )
        ).one()
    assert str(row.fee) == "3.70"
    assert str(row.quote_id) == fields["quote_id"]


async def test_an_expired_quote_is_refused_on_the_form(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    address = await web_sign_up(client)
    await web_verify(client)
    review = await post_form(client, "/app/deposit", {"amount": "100.00", **CARD})
    fields = hidden_fields(review.text)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE fee_quotes SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": fields["quote_id"]},
        )
    refused = await client.post("/app/deposit", data={**fields, "step": "confirm"})
    assert refused.status_code == 422
    assert "expired" in refused.text
    assert 'value="100.00"' in refused.text  # the form keeps what was typed
    assert await _transactions(engine, address) == 0
    # "Change" brings the form back with the values, nothing quoted or moved.
    edit = await client.post("/app/deposit", data={**fields, "step": "edit"})
    assert edit.status_code == 200
    assert 'value="100.00"' in edit.text


async def test_a_submission_left_for_review_is_said_so(client: httpx.AsyncClient) -> None:
    await web_sign_up(client)
    response = await web_verify(client, last_name="Review")
    assert "being reviewed by our team" in response.text
    dashboard = (await client.get("/app")).text
    assert "Your identity check is being reviewed" in dashboard
    assert "being reviewed" in (await client.get("/app/kyc")).text


async def test_sign_in_returns_to_the_page_that_asked_for_it(client: httpx.AsyncClient) -> None:
    address = await web_sign_up(client)
    await post_form(client, "/app/logout", {}, form_page="/app")
    asked = await client.get("/app/transactions")
    assert asked.headers["location"] == "/app/login?next=/app/transactions"
    login = await client.get(asked.headers["location"])
    assert 'action="/app/login?next=/app/transactions"' in login.text
    response = await client.post(
        "/app/login?next=/app/transactions",
        data={**hidden_fields(login.text), "email": address, "password": STRONG_PASSWORD},
    )
    assert response.headers["location"] == "/app/transactions"


async def test_a_used_form_sent_again_with_other_values_is_refused_plainly(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    address = await web_sign_up(client)
    await web_verify(client)
    form = hidden_fields((await client.get("/app/deposit")).text)
    first = await client.post("/app/deposit", data={**form, "amount": "10.00", **CARD})
    transaction_id_of(
        await client.post("/app/deposit", data={**hidden_fields(first.text), "step": "confirm"})
    )
    # Back to the same form (same key), another amount, reviewed and confirmed.
    second = await client.post("/app/deposit", data={**form, "amount": "11.00", **CARD})
    refused = await client.post(
        "/app/deposit", data={**hidden_fields(second.text), "step": "confirm"}
    )
    assert refused.status_code == 409
    assert "This form was already sent" in refused.text
    assert await _transactions(engine, address) == 1
