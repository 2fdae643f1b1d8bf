"""The consumer app installed as a web app: offline, it shows its offline page with the last
balance the device saw, marked as not current; signing out forgets that balance."""

from __future__ import annotations

import httpx
from playwright.async_api import BrowserContext, Page, expect

from tests.e2e.conftest import LiveServer, screenshot
from tests.e2e.flows import deposit, sign_up, verify_identity


async def test_offline_the_app_shows_the_last_known_balance_as_stale(
    page: Page, context: BrowserContext, viewport: str
) -> None:
    await sign_up(page, name="Gladys West")
    await verify_identity(page, last_name="West")
    await deposit(page, "60.00")
    await page.goto("/app")
    total = await page.get_by_test_id("total-usd").inner_text()
    assert total != "$0.00"
    # The service worker has installed and keeps the offline shell.
    registered = await page.evaluate(
        "Promise.race([navigator.serviceWorker.ready.then(() => 'ready'),"
        " new Promise(r => setTimeout(() => r('timeout'), 15000))])"
    )
    assert registered == "ready"
    await page.reload()  # now controlled by the worker

    await context.set_offline(True)
    await page.goto("/app/transactions")
    await expect(page.get_by_role("heading", level=1)).to_have_text("You are offline")
    await expect(page.get_by_test_id("last-known-total")).to_have_text(total)
    await expect(page.get_by_test_id("stale")).to_have_text("not current")
    await screenshot(page, viewport, "app-offline")
    await context.set_offline(False)


async def test_the_manifest_and_worker_are_served_without_personal_data(
    live_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        manifest = await client.get("/app/manifest.webmanifest")
        worker = await client.get("/app/sw.js")
    assert manifest.status_code == 200
    assert manifest.json()["start_url"] == "/app"
    assert worker.headers["content-type"].startswith("text/javascript")
    assert worker.headers["cache-control"] == "no-cache"
    assert "set-cookie" not in worker.headers
    # It keeps only the offline page and static files, never a personal page.
    assert '"/app/offline"' in worker.text and '"/app"' not in worker.text
