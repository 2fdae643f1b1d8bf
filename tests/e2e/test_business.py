"""The business app in the browser: a customer funds their balance, creates an organisation,
funds its treasury, uploads a payout CSV, reads the report before anything moves, executes it
(with the keyboard) and the recipients see the money — on a desktop and a phone."""

from __future__ import annotations

import re

import httpx
from playwright.async_api import Browser, Dialog, Page, Playwright, expect

from tests.api.conftest import STRONG_PASSWORD, new_email
from tests.e2e.conftest import LiveServer, new_context, screenshot
from tests.e2e.flows import deposit, sign_in, sign_up, verify_identity
from tests.e2e.test_accessibility import UNLABELLED


async def _recipient(server: LiveServer, name: str) -> str:
    """A diBoaS user to pay (registered through the API: recipients need no identity check)."""
    email = new_email()
    async with httpx.AsyncClient(base_url=server.url) as api:
        registered = await api.post(
            "/api/v1/auth/register",
            json={"email": email, "password": STRONG_PASSWORD, "full_name": name},
        )
        assert registered.status_code == 201, registered.text
    return email


async def _accept(dialog: Dialog) -> None:
    await dialog.accept()  # the "Pay every row…?" confirmation


async def _labelled(page: Page) -> None:
    assert await page.evaluate(UNLABELLED) == [], page.url
    assert await page.locator("h1").count() == 1, page.url


async def test_a_business_pays_its_payroll_in_the_browser(
    page: Page,
    viewport: str,
    live_server: LiveServer,
    browser: Browser,
    playwright: Playwright,
) -> None:
    ann = await _recipient(live_server, "Ann Recipient")
    ben = await _recipient(live_server, "Ben Recipient")
    await sign_up(page, name="Dorothy Vaughan")
    await verify_identity(page, last_name="Vaughan")
    await deposit(page, "300.00")

    # From the consumer app's navigation to the business app.
    await page.goto("/app")
    await page.get_by_role("link", name="Business", exact=True).first.click()
    await expect(page).to_have_url(re.compile(r"/business$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your organisations")
    await _labelled(page)
    await screenshot(page, viewport, "business-home")

    await page.get_by_label("Organisation name").fill("Vaughan & Co <Computing>")
    await page.get_by_role("button", name="Create organisation").click()
    await expect(page).to_have_url(re.compile(r"/business/orgs/[0-9a-f-]{36}\?done=created$"))
    org_url = page.url.split("?")[0]
    await expect(page.get_by_test_id("org-name")).to_have_text("Vaughan & Co <Computing>")

    await page.get_by_label("Amount in USD").fill("200.00")
    await page.get_by_label("Note (optional)").fill("Payroll float")
    await page.get_by_role("button", name="Fund treasury").click()
    await expect(page.get_by_role("status")).to_have_text("The treasury is funded.")
    await expect(page.get_by_test_id("treasury-total")).to_have_text("$200.00")
    await expect(page.get_by_test_id("movement-row")).to_have_count(1)
    await _labelled(page)
    await screenshot(page, viewport, "business-treasury")

    await (
        page.get_by_role("navigation", name="Organisation")
        .get_by_role("link", name="Payouts")
        .click()
    )
    await expect(page.get_by_role("heading", level=1)).to_have_text("Bulk payouts")
    await _labelled(page)
    payroll = (
        "recipient_email,amount,currency,note\n"
        f"{ann},120.00,USD,June salary\n"
        f"{ben},55.25,USD,June salary\n"
    )
    await page.get_by_label("Payout file (CSV)").set_input_files(
        files=[{"name": "payroll.csv", "mimeType": "text/csv", "buffer": payroll.encode()}]
    )
    await page.get_by_role("button", name="Upload and check").click()
    await expect(page).to_have_url(re.compile(r"/payouts/[0-9a-f-]{36}$"))

    # The report, before anything moves.
    await expect(page.get_by_test_id("payout-row")).to_have_count(2)
    await expect(page.locator('[data-testid="payout-row"][data-status="ok"]')).to_have_count(2)
    await expect(page.get_by_test_id("batch-total")).to_have_text("175.25 USD")
    await expect(page.get_by_test_id("batch-status")).to_have_text("validated")
    await _labelled(page)
    await screenshot(page, viewport, "business-payout-report")

    # Execute with the keyboard alone: Tab to the button (its focus is visible), Enter.
    page.on("dialog", _accept)
    execute = page.get_by_role("button", name="Execute payouts")
    await page.locator("h1").focus()
    for _ in range(40):
        if await execute.evaluate("el => el === document.activeElement"):
            break
        await page.keyboard.press("Tab")
    await expect(execute).to_be_focused()
    assert await execute.evaluate("el => getComputedStyle(el).outlineStyle") != "none"
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"\?done=paid&rows=2$"))
    await expect(page.get_by_role("status")).to_have_text("The batch is paid: 2 rows.")
    await expect(page.locator('[data-testid="payout-row"][data-status="completed"]')).to_have_count(
        2
    )
    await expect(page.get_by_test_id("batch-status")).to_have_text("completed")
    await expect(page.get_by_role("button", name="Execute payouts")).to_have_count(0)
    await screenshot(page, viewport, "business-payout-paid")

    await page.goto(org_url)
    await expect(page.get_by_test_id("treasury-total")).to_have_text("$24.75")

    for tail, name in (
        ("/members", "business-members"),
        ("/yield", "business-yield"),
        ("/api-keys", "business-api-keys"),
        ("/allowlist", "business-allowlist"),
        ("/exports", "business-exports"),
        ("/audit", "business-audit"),
    ):
        await page.goto(org_url + tail)
        await _labelled(page)
        await screenshot(page, viewport, name)
    await expect(page.get_by_test_id("audit-row").first).to_be_visible()

    # A key, shown once.
    await page.goto(org_url + "/api-keys")
    await page.get_by_label("Key name").fill("Payroll system")
    await page.get_by_label(re.compile(r"^Upload and execute payouts")).check()
    await page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("api-key-secret")
    await expect(secret).to_have_value(re.compile(r"^dbk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$"))
    await screenshot(page, viewport, "business-api-key-created")
    await page.get_by_role("link", name="Back to API keys").click()
    await expect(page.get_by_test_id("key-row")).to_have_count(1)
    await expect(page.get_by_test_id("api-key-secret")).to_have_count(0)

    # A recipient signs in and sees the money.
    recipient = await new_context(browser, playwright, live_server, viewport)
    try:
        their = await recipient.new_page()
        await sign_in(their, ann)
        await expect(their.get_by_test_id("total-usd")).to_have_text("$120.00")
        await expect(their.get_by_test_id("transaction-row").first).to_contain_text("Received")
    finally:
        await recipient.close()
