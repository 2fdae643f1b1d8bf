"""A new customer in the browser alone: sign-up, identity check, deposit, withdrawal,
a transfer to another customer, history — on a desktop and on a phone-sized screen."""

from __future__ import annotations

import re

from playwright.async_api import Browser, Page, Playwright, expect

from tests.e2e.conftest import LiveServer, new_context, screenshot
from tests.e2e.flows import deposit, link_bank_account, sign_up, verify_identity


async def test_marketing_site_shows_the_live_fee_schedule(page: Page, viewport: str) -> None:
    await page.goto("/")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("one account")
    await screenshot(page, viewport, "marketing-home")
    await page.get_by_role("link", name="Fees").first.click()
    await expect(page.get_by_role("table", name="Add money")).to_contain_text(
        "Card processing (2.9% + $0.30)"
    )
    await expect(page.get_by_role("table", name="Send to a diBoaS user")).to_contain_text("free")
    await screenshot(page, viewport, "marketing-fees")
    await page.goto("/learn")
    await page.get_by_role("link", name="How our fees are worked out").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("How our fees are worked out")
    await screenshot(page, viewport, "marketing-article")
    await page.goto("/banking")
    await screenshot(page, viewport, "marketing-banking")


async def test_a_new_customer_moves_money_in_the_browser(
    page: Page,
    viewport: str,
    browser: Browser,
    playwright: Playwright,
    live_server: LiveServer,
) -> None:
    # The recipient opens an account in a browser of their own.
    other = await new_context(browser, playwright, live_server, viewport)
    recipient = await sign_up(await other.new_page(), name="Dorothy Vaughan")
    await other.close()

    await sign_up(page)
    await screenshot(page, viewport, "app-kyc")
    await verify_identity(page)
    await expect(page.get_by_test_id("kyc-result")).to_contain_text("Your identity is verified")

    await deposit(page, "250.00")
    await screenshot(page, viewport, "app-transaction")
    await page.get_by_role("link", name="Back to the dashboard").click()
    # 250.00 by card: 2.9 % + 0.30 and 0.5 % platform fee = 8.80 taken from the deposit.
    await expect(page.get_by_test_id("available-banking-USD")).to_have_text("241.20 USD")
    await screenshot(page, viewport, "app-dashboard")

    await page.get_by_role("link", name="Send", exact=True).first.click()
    await page.get_by_label("Recipient's email").fill(recipient)
    await page.get_by_label("Amount in USD").fill("40.00")
    await page.get_by_label("Note (optional)").fill("Lunch")
    await screenshot(page, viewport, "app-send")
    await page.get_by_role("button", name="Review").click()
    await expect(page.get_by_test_id("review-fee")).to_have_text("0.00 USD")
    await expect(page.get_by_test_id("review-net")).to_have_text("40.00 USD")
    await screenshot(page, viewport, "app-review")
    await page.get_by_role("button", name="Confirm and send").click()
    await expect(page.get_by_test_id("status")).to_have_text("completed")
    await expect(page.get_by_text(recipient)).to_be_visible()

    await link_bank_account(page)
    await screenshot(page, viewport, "app-settings")
    await page.get_by_role("link", name="Withdraw", exact=True).first.click()
    await page.get_by_label("Amount in USD").fill("100.00")
    await page.get_by_label("To bank account").select_option(index=0)
    await screenshot(page, viewport, "app-withdraw")
    await page.get_by_role("button", name="Review").click()
    await expect(page.get_by_test_id("review-net")).to_have_text("100.85 USD")
    await page.get_by_role("button", name="Confirm and withdraw").click()
    await expect(page.get_by_test_id("status")).to_have_text("completed", timeout=30_000)
    # Withdrawal fee: 0.25 provider + max(0.50, 0.1 % + 0.50) platform = 0.85.
    await expect(page.get_by_test_id("fee")).to_have_text("0.85 USD")

    await page.get_by_role("link", name="History").first.click()
    rows = page.get_by_test_id("transaction-row")
    await expect(rows).to_have_count(3)
    await page.get_by_label("Type").select_option("transfer_out")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(recipient)
    await screenshot(page, viewport, "app-history")

    await page.get_by_role("link", name="Dashboard").click()
    # 241.20 - 40.00 - 100.00 - 0.85
    await expect(page.get_by_test_id("available-banking-USD")).to_have_text("100.35 USD")
    assert re.search(r"/app$", page.url)
