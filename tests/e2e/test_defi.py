"""DeFi in the browser: the catalog with APY and risk, investing from the balance, the
position, and withdrawing it all — on the sandbox vault, through the in-process worker."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.flows import deposit, sign_up, verify_identity


async def test_a_customer_invests_and_withdraws_in_the_browser(page: Page, viewport: str) -> None:
    await sign_up(page, name="Frances Allen")
    await verify_identity(page, last_name="Allen")
    await deposit(page, "250.00")

    await page.get_by_role("link", name="DeFi", exact=True).first.click()
    await expect(page.get_by_test_id("risk-usdc-core")).to_have_text("2")
    await expect(page.get_by_test_id("risk-usdc-growth")).to_have_text("4")
    await screenshot(page, viewport, "app-defi")

    # Above the default risk profile without acknowledging: refused, nothing invested.
    await page.get_by_label("Strategy", exact=True).select_option("usdc-growth")
    await page.get_by_label("Amount in USD").fill("150.00")
    await page.get_by_role("button", name="Invest").click()
    await expect(page.get_by_role("alert").first).to_contain_text("risk")
    await expect(page.get_by_text("No positions yet.")).to_be_visible()

    await page.get_by_label("Strategy", exact=True).select_option("usdc-core")
    await page.get_by_label("Amount in USD").fill("100.00")
    await page.get_by_role("button", name="Invest").click()
    await expect(page).to_have_url(re.compile(r"/app/transactions/[0-9a-f-]{36}$"))
    await expect(page.get_by_test_id("status")).to_have_text("completed", timeout=30_000)

    await page.goto("/app/defi")
    # Worth the 100 put in: a vault whose share price is above 1 may round it a unit down.
    await expect(page.get_by_test_id("position-value")).to_have_text(
        re.compile(r"^(100\.\d{6}|99\.99999\d) USDC$")
    )
    # The position names its strategy as the catalog does, not by its internal id.
    await expect(page.get_by_role("rowheader", name="USDC Core Vault")).to_have_count(2)
    await screenshot(page, viewport, "app-defi-position")
    await page.get_by_role("button", name="Withdraw all").click()
    await expect(page).to_have_url(re.compile(r"/app/transactions/[0-9a-f-]{36}$"))
    await expect(page.get_by_test_id("status")).to_have_text("completed", timeout=30_000)
    await page.goto("/app/defi")
    await expect(page.get_by_text("No positions yet.")).to_be_visible()
