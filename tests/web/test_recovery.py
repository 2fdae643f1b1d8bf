"""The pages emailed links lead to: confirm an email address, reset a forgotten password.
The emails are real (an SMTP sink); the links work once."""

from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import STRONG_PASSWORD, Mailbox, sign_in
from tests.web.helpers import hidden_fields, post_form, web_sign_up

NEW_PASSWORD = "a-brand-new-passphrase-7"


async def _verified(engine: AsyncEngine, email: str) -> bool:
    async with engine.connect() as conn:
        query = text("SELECT email_verified_at IS NOT NULL FROM users WHERE email = :e")
        return bool((await conn.execute(query, {"e": email})).scalar_one())


async def test_the_emailed_link_confirms_the_address_once(
    client: httpx.AsyncClient, inbox: Mailbox, engine: AsyncEngine
) -> None:
    address = await web_sign_up(client)
    message = await inbox.wait_for(address, "Confirm your email")
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert "/app/verify-email?token=" in body.decode()
    token = await inbox.token_for(address, "Confirm your email")
    await post_form(client, "/app/logout", {}, form_page="/app")  # works signed out too

    page = await client.get("/app/verify-email", params={"token": token})
    assert page.status_code == 200
    assert not await _verified(engine, address)  # opening the link changes nothing
    confirmed = await client.post(
        "/app/verify-email", data=hidden_fields(page.text) | {"token": token}
    )
    assert "Your email address is confirmed" in confirmed.text
    assert await _verified(engine, address)
    again = await client.post("/app/verify-email", data=hidden_fields(page.text) | {"token": token})
    assert again.status_code == 400
    assert "invalid or has expired" in again.text


async def test_settings_send_the_confirmation_link_again(
    client: httpx.AsyncClient, inbox: Mailbox
) -> None:
    address = await web_sign_up(client)
    await inbox.wait_for(address, "Confirm your email")
    before = sum(1 for m in inbox.messages if m["To"] == address)
    response = await post_form(
        client, "/app/settings/email-verification", {}, form_page="/app/settings"
    )
    assert response.headers["location"] == "/app/settings?done=verification_sent"
    for _ in range(200):  # the email is sent by a job: wait for it (at most 20 s)
        if sum(1 for m in inbox.messages if m["To"] == address) > before:
            break
        await asyncio.sleep(0.1)
    assert sum(1 for m in inbox.messages if m["To"] == address) == before + 1


async def test_a_forgotten_password_is_reset_from_the_emailed_link(
    client: httpx.AsyncClient, inbox: Mailbox
) -> None:
    address = await web_sign_up(client)
    api = await sign_in(client, address)
    await post_form(client, "/app/logout", {}, form_page="/app")

    unknown = await post_form(client, "/app/forgot-password", {"email": "nobody@example.com"})
    asked = await post_form(client, "/app/forgot-password", {"email": address})
    # The same answer whether the account exists or not.
    assert unknown.status_code == asked.status_code == 200
    assert "If an account uses" in unknown.text
    assert "If an account uses" in asked.text
    token = await inbox.token_for(address, "Reset your diBoaS password")

    page = await client.get("/app/reset-password", params={"token": token})
    weak = await client.post(
        "/app/reset-password",
        data={**hidden_fields(page.text), "token": token, "new_password": "short"},
    )
    assert weak.status_code == 422
    assert 'id="f-new_password-error"' in weak.text
    done = await client.post(
        "/app/reset-password",
        data={**hidden_fields(page.text), "token": token, "new_password": NEW_PASSWORD},
    )
    assert done.headers["location"] == "/app/login?password_reset=1"
    # Every session ended; the old password no longer works, the new one does.
    assert (await client.get("/api/v1/me", headers=api["headers"])).status_code == 401
    old = await post_form(client, "/app/login", {"email": address, "password": STRONG_PASSWORD})
    assert old.status_code == 401
    new = await post_form(client, "/app/login", {"email": address, "password": NEW_PASSWORD})
    assert new.headers["location"] == "/app"
