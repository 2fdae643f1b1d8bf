"""A balance change reaches an open dashboard without a reload: money sent to the customer
by someone else (through the API) appears on their page, pushed over the WebSocket."""

from __future__ import annotations

import uuid

import httpx
from playwright.async_api import Page, expect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import connect

from diboas.db.engine import SessionFactory
from tests.api.conftest import sign_up as api_sign_up
from tests.banking.helpers import fund
from tests.e2e.conftest import LiveServer, screenshot
from tests.e2e.flows import sign_up, verify_identity


async def test_money_received_appears_on_the_open_dashboard(
    page: Page,
    viewport: str,
    live_server: LiveServer,
    engine: AsyncEngine,
    sessions: SessionFactory,
) -> None:
    email = await sign_up(page, name="Mary Jackson")
    await verify_identity(page, last_name="Jackson")
    await page.goto("/app")
    await expect(page.get_by_test_id("total-usd")).to_have_text("$0.00")
    # The page has opened its live channel (signed in by its session cookie).
    await expect(page.locator("html")).to_have_attribute("data-live", "connected")

    async with httpx.AsyncClient(base_url=live_server.url) as api:
        sender = await api_sign_up(api, name="Christine Darden")
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE users SET kyc_tier = 1, kyc_status = 'approved' WHERE email = :e"),
                {"e": sender["email"]},
            )
        await fund(sessions, uuid.UUID(sender["user"]["id"]), "100.00")
        sent = await api.post(
            "/api/v1/banking/transfers",
            headers=sender["headers"],
            json={"recipient_email": email, "amount": "42.50", "currency": "USD"},
        )
        assert sent.status_code == 201, sent.text

    # No reload: the pushed hint makes the page read its balance again.
    await expect(page.get_by_test_id("total-usd")).to_have_text("$42.50")
    await expect(page.get_by_test_id("available-banking-USD")).to_have_text("42.50 USD")
    await screenshot(page, viewport, "app-dashboard-live")


async def test_a_page_from_another_site_cannot_ride_the_session_cookie(
    page: Page, live_server: LiveServer
) -> None:
    await sign_up(page, name="Annie Easley")
    await page.goto("/app")
    await expect(page.locator("html")).to_have_attribute("data-live", "connected")
    # The same browser, with its cookie, opening the socket with a foreign Origin: refused.
    ws_url = live_server.url.replace("http://", "ws://") + "/api/v1/ws"
    cookies = await page.context.cookies()
    header = "; ".join(f"{c['name']}={c['value']}" for c in cookies)

    async with connect(
        ws_url, origin="https://evil.example", additional_headers={"Cookie": header}
    ) as hijack:
        # Without an auth message the server waits for one, then refuses.
        await hijack.send('{"type": "auth", "token": "none"}')
        assert '"unauthorized"' in str(await hijack.recv())
