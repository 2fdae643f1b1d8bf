"""Buying and selling crypto in the browser: a locked quote reviewed with its countdown,
confirmed once; the portfolio shows the holding, and a sale reduces it by exactly what was
sold."""

from __future__ import annotations

import re
from decimal import Decimal

from playwright.async_api import Page, expect

from tests.e2e.conftest import screenshot
from tests.e2e.flows import deposit, sign_up, verify_identity


async def test_a_customer_buys_then_sells_part_in_the_browser(page: Page, viewport: str) -> None:
    await sign_up(page, name="Evelyn Boyd Granville")
    await verify_identity(page, last_name="Granville")
    await deposit(page, "250.00")

    await page.get_by_role("link", name="Invest", exact=True).first.click()
    await expect(page.get_by_test_id("price-BTC")).to_contain_text("$")
    await screenshot(page, viewport, "app-invest")
    for spend in ("100.00", "101.00"):
        await page.get_by_label("Buy or sell").select_option("buy")
        await page.get_by_label("Asset").select_option("BTC")
        await page.get_by_label("To buy: USD to spend").fill(spend)
        await page.get_by_role("button", name="Get a price").click()
        await expect(page.get_by_test_id("trade-review")).to_be_visible()
        await expect(page.locator("[data-quote-countdown]")).to_contain_text("more seconds")
        bought = (await page.get_by_test_id("review-quantity").inner_text()).split()[0]
        if not bought.endswith("66"):
            break
        # The sandbox venue refuses quantities ending in 66 lots (documented): ask again.
        await page.get_by_role("button", name="Change").click()
    await screenshot(page, viewport, "app-invest-review")
    await page.get_by_role("button", name="Confirm: buy BTC").click()
    await expect(page).to_have_url(re.compile(r"/app/transactions/[0-9a-f-]+$"))
    await expect(page.get_by_text("completed").first).to_be_visible()

    await page.goto("/app/invest")
    await expect(page.get_by_test_id("holding-BTC")).to_have_text(f"{bought} BTC")
    half = (Decimal(bought) / 2).quantize(Decimal("0.00000001"))
    if str(half).endswith("66"):  # the sandbox venue's documented refusal (README): avoid it
        half -= Decimal("0.00000001")
    await page.get_by_label("Buy or sell").select_option("sell")
    await page.get_by_label("Asset").select_option("BTC")
    await page.get_by_label("To sell: quantity").fill(str(half))
    await page.get_by_role("button", name="Get a price").click()
    await expect(page.get_by_test_id("review-quantity")).to_have_text(f"{half} BTC")
    await page.get_by_role("button", name="Confirm: sell BTC").click()
    await expect(page).to_have_url(re.compile(r"/app/transactions/[0-9a-f-]+$"))

    await page.goto("/app/invest")
    left = Decimal(bought) - half
    await expect(page.get_by_test_id("holding-BTC")).to_have_text(f"{left} BTC")
    await screenshot(page, viewport, "app-invest-portfolio")

    # The history filters trades like any other movement.
    await page.goto("/app/transactions")
    await page.get_by_label("Type").select_option(label="Sell")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.get_by_test_id("transaction-row")).to_have_count(1)
    await expect(page.get_by_test_id("transaction-row")).to_contain_text("Sell")
