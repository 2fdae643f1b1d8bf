"""Accessibility in the browser: every control has a label, focus is visible, and a person
can sign in and move around with the keyboard alone."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.api.conftest import STRONG_PASSWORD
from tests.e2e.flows import link_bank_account, sign_up, verify_identity

PAGES = (
    "/",
    "/fees",
    "/learn",
    "/app",
    "/app/deposit",
    "/app/withdraw",
    "/app/send",
    "/app/transactions",
    "/app/settings",
)
UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea, button')]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML)"""


async def test_every_control_has_a_label(page: Page) -> None:
    await sign_up(page)
    await verify_identity(page)
    await link_bank_account(page)
    for path in PAGES:
        await page.goto(path)
        assert await page.evaluate(UNLABELLED) == [], path
        assert await page.locator("html[lang=en]").count() == 1
        assert await page.locator("h1").count() == 1, path


async def test_keyboard_alone_signs_in_with_visible_focus(page: Page, viewport: str) -> None:
    email = await sign_up(page)
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/app/login"))

    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    outline = await skip.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none"
    await page.keyboard.press("Enter")  # to the main content, past the navigation

    email_field = page.get_by_label("Email")
    for _ in range(10):
        if await email_field.evaluate("el => el === document.activeElement"):
            break
        await page.keyboard.press("Tab")
    await expect(email_field).to_be_focused()
    width = await email_field.evaluate("el => getComputedStyle(el).outlineWidth")
    assert width not in ("0px", "")
    await page.keyboard.type(email)
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Password")).to_be_focused()
    await page.keyboard.type(STRONG_PASSWORD)
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"/app$"))
