"""What the browser itself does with hostile input: a name made of HTML and script is shown
as text and never runs; a tampered form and a cross-site form move no money."""

from __future__ import annotations

import re

from playwright.async_api import Browser, Dialog, Page, Playwright, expect

from tests.e2e.conftest import LiveServer, context_options, screenshot
from tests.e2e.flows import sign_up, verify_identity

HOSTILE_NAME = (
    '<script>window.__pwned = "script"; alert("script")</script>'
    "<img src=x onerror=\"window.__pwned='img'; alert('img')\">"
    '"><svg onload=alert("svg")>'
)


async def test_a_name_full_of_html_and_script_is_shown_as_text(page: Page, viewport: str) -> None:
    dialogs: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    await sign_up(page, name=HOSTILE_NAME)
    await expect(page.get_by_role("status").first).to_contain_text(HOSTILE_NAME)
    for path in ("/app", "/app/settings"):
        await page.goto(path)
        await expect(page.get_by_text(HOSTILE_NAME).first).to_be_visible()
        assert await page.evaluate("window.__pwned") is None
        # The markup stayed text: no element was made from it.
        assert await page.locator("main script, main img[src=x], main svg").count() == 0
    assert dialogs == []
    await screenshot(page, viewport, "app-hostile-name")


async def test_a_tampered_form_is_refused_and_moves_nothing(page: Page, viewport: str) -> None:
    await sign_up(page)
    await verify_identity(page)
    await page.goto("/app/deposit")
    await page.get_by_label("Amount in USD").fill("75.00")
    await page.evaluate(
        "document.querySelector('main input[name=csrf_token]').value = 'forged-token'"
    )
    async with page.expect_response(re.compile(r"/app/deposit$")) as answer:
        await page.get_by_role("button", name="Review").click()
    assert (await answer.value).status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text("This form has expired")
    await screenshot(page, viewport, "app-csrf-refused")
    await page.goto("/app/transactions")
    await expect(page.get_by_text("No transactions yet.")).to_be_visible()


async def test_a_form_on_another_site_cannot_move_money(
    browser: Browser, playwright: Playwright, live_server: LiveServer, viewport: str
) -> None:
    # Service workers off in this profile: with one, Playwright reports the whole redirect
    # chain as one answer from the worker, hiding the 303 this test is about (the worker
    # itself leaves cross-site navigations alone: consumer/offline.py).
    context = await browser.new_context(
        base_url=live_server.url, service_workers="block", **context_options(playwright, viewport)
    )
    page = await context.new_page()
    await sign_up(page)
    await verify_identity(page)
    server = page.url.split("/app/")[0]
    attack = f"""<!doctype html><title>Win a prize</title>
        <form method="post" action="{server}/app/send">
          <input type="hidden" name="recipient_email" value="mallory@example.com">
          <input type="hidden" name="amount" value="5.00">
          <button type="submit">Claim your prize</button>
        </form>"""

    await context.route(
        "http://prize.example/**",
        lambda route: route.fulfill(status=200, content_type="text/html", body=attack),
    )
    await page.goto("http://prize.example/")
    async with page.expect_response(re.compile(r"/app/send$")) as answer:
        await page.get_by_role("button", name="Claim your prize").click()
    response = await answer.value
    # SameSite=Lax keeps the session cookie off a cross-site POST: the app sees a stranger
    # and sends them to sign in (had the cookie come along, the missing token would be 403).
    assert response.status == 303
    assert (await response.header_value("location")) == "/app/login?next=/app/send"
    await page.goto(f"{server}/app/transactions")
    await expect(page.get_by_text("No transactions yet.")).to_be_visible()
    await context.close()
