"""Rotating DIBOAS_SECRET_KEY fails no request (DESIGN §6): while the old key is listed in
DIBOAS_SECRET_KEY_PREVIOUS, what it signed — web session cookies, form tokens on screens,
access tokens — keeps working and new signatures use the new key; once it is retired, what
it signed is refused. Business API keys do not depend on the secret key at all.

Three apps on one database play the three moments of a rotation: before (old key), during
(new key, old one previous) and after (new key alone)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import Mailbox, sign_in
from tests.banking.helpers import customer
from tests.business.helpers import business_app, create_key, create_organisation, key_headers
from tests.web.helpers import hidden_fields, web_sign_up

OLD = "the-old-secret-key-that-is-being-rotated-out-0001"
NEW = "the-new-secret-key-that-replaces-the-old-one-0002"
ME = "/api/v1/me"


@asynccontextmanager
async def app_client(
    database_url: URL, smtp_port: int, cookies: httpx.Cookies | None = None, **secrets: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = business_app(database_url, smtp_port, run_worker_in_process=False, **secrets)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies=cookies
        ) as client:
            yield client


async def test_a_rotation_signs_nobody_out_and_retiring_the_old_key_refuses_its_signatures(
    database_url: URL, mailbox: tuple[Mailbox, int], engine: AsyncEngine
) -> None:
    port = mailbox[1]
    async with app_client(database_url, port, secret_key=OLD) as before:
        await web_sign_up(before)
        form = await before.get("/app/settings")  # a form left open on a screen
        assert form.status_code == 200
        token_of_form = hidden_fields(form.text)
        admin = await customer(before, engine)
        organisation = await create_organisation(before, admin["headers"])
        api_key = await create_key(
            before, admin["headers"], organisation["id"], ["organisation:read"]
        )
        browser_cookies = before.cookies

    organisation_path = f"/api/v1/business/organisations/{organisation['id']}"
    async with app_client(
        database_url, port, browser_cookies, secret_key=NEW, secret_key_previous=[OLD]
    ) as during:
        assert (await during.get("/app")).status_code == 200  # the old session cookie
        assert (await during.get(ME, headers=admin["headers"])).status_code == 200  # old token
        # The form rendered before the rotation is still accepted (a CSRF refusal is a 403).
        sent = await during.post("/app/settings/password", data={**token_of_form})
        assert sent.status_code != 403, sent.text
        assert (
            await during.get(organisation_path, headers=key_headers(api_key))
        ).status_code == 200
        fresh_token = (await sign_in(during, admin["email"]))["headers"]

    async with app_client(database_url, port, browser_cookies, secret_key=NEW) as after:
        assert (await after.get(ME, headers=fresh_token)).status_code == 200  # signed under NEW
        assert (await after.get(ME, headers=admin["headers"])).status_code == 401  # under OLD
        signed_out = await after.get("/app")
        assert signed_out.status_code == 303
        assert signed_out.headers["location"].startswith("/app/login")
        assert (await after.get(organisation_path, headers=key_headers(api_key))).status_code == 200
