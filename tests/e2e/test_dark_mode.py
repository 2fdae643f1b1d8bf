"""Dark mode follows the device's setting (prefers-color-scheme), with no switch to flip."""

from __future__ import annotations

from playwright.async_api import Page

from tests.e2e.conftest import screenshot
from tests.e2e.flows import sign_up


async def test_pages_follow_the_devices_dark_setting(page: Page, viewport: str) -> None:
    await page.emulate_media(color_scheme="light")
    await page.goto("/")
    light = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    await page.emulate_media(color_scheme="dark")
    dark = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert light == "rgb(255, 255, 255)"
    assert dark == "rgb(11, 18, 32)"
    await screenshot(page, viewport, "marketing-home-dark")
    await sign_up(page)
    await page.goto("/app")
    text = await page.evaluate("getComputedStyle(document.querySelector('h1')).color")
    assert text == "rgb(229, 231, 235)"
    await screenshot(page, viewport, "app-dashboard-dark")
