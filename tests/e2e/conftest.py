"""Browser tests: Debian's Chromium driven by Playwright against a real server.

The server is the platform's own app (``create_app``, the same settings as the API tests)
served by uvicorn on a free loopback port from a background thread, on the test database,
with its in-process job worker, so a sandbox deposit settles while the browser watches.

Chromium comes from ``tools/install-chromium`` (``make test`` runs it). In CI the tests
must run: a missing Chromium fails them. Elsewhere they are skipped only when Chromium is
missing and the script cannot install it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright
from sqlalchemy.engine import URL

from diboas.api.app import create_app
from diboas.db.urls import plain_url
from tests.api.conftest import Mailbox, _free_port, mailbox, settings_for_tests

__all__ = ["mailbox"]

CHROMIUM = Path("/usr/bin/chromium")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
# Playwright's iPhone descriptor, minus its default engine (WebKit): the same viewport,
# pixel ratio, touch and user agent, rendered by Chromium.
MOBILE_DEVICE = "iPhone 13"


def _chromium_or_skip() -> Path:
    if not CHROMIUM.exists():
        subprocess.run([str(PROJECT_ROOT / "tools" / "install-chromium")], check=False)
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} is missing in CI (tools/install-chromium could not install it)")
    pytest.skip(f"{CHROMIUM} is missing and tools/install-chromium could not install it")


class LiveServer:
    """The app under uvicorn in a thread of this process."""

    def __init__(self, app: Any, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="e2e-uvicorn", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


# Package scope: the server (and its job worker) stops when the browser tests are done. Left
# running, its worker would keep taking jobs from the shared test database — e.g. the emails
# a later test waits for in its own SMTP sink.
@pytest.fixture(scope="package")
def live_server(database_url: URL, mailbox: tuple[Mailbox, int]) -> Iterator[LiveServer]:
    app = create_app(settings_for_tests(mailbox[1]), database_url=plain_url(database_url))
    server = LiveServer(app, _free_port())
    server.start()
    yield server
    server.stop()


# Playwright's async API, on the tests' own event loop: its sync API keeps an event loop
# running in the main thread, which the database fixtures' loop cannot share.
@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as p:
        yield p


@pytest.fixture(scope="session")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    executable = _chromium_or_skip()
    browser = await playwright.chromium.launch(executable_path=str(executable))
    yield browser
    await browser.close()


def context_options(playwright: Playwright, viewport: str) -> dict[str, Any]:
    """Browser-context options for the "desktop" or "mobile" viewport."""
    if viewport == "mobile":
        device = dict(playwright.devices[MOBILE_DEVICE])
        device.pop("default_browser_type", None)
        return device
    return {"viewport": {"width": 1280, "height": 900}}


@pytest.fixture(params=["desktop", "mobile"])
def viewport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def new_context(
    browser: Browser, playwright: Playwright, server: LiveServer, viewport: str
) -> BrowserContext:
    """A fresh browser profile (no cookies) for ``viewport`` on the test server."""
    ctx = await browser.new_context(base_url=server.url, **context_options(playwright, viewport))
    ctx.set_default_timeout(15_000)
    return ctx


@pytest.fixture
async def context(
    live_server: LiveServer, browser: Browser, playwright: Playwright, viewport: str
) -> AsyncIterator[BrowserContext]:
    ctx = await new_context(browser, playwright, live_server, viewport)
    yield ctx
    await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


async def screenshot(page: Page, viewport: str, name: str) -> None:
    """Keep a full-page screenshot as a test artifact (test-artifacts/ is not committed),
    after checking that the page fits its viewport's width (mobile-first: nothing scrolls
    sideways but the tables that are meant to)."""
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} on {viewport} is {overflow}px wider than the screen"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}-{viewport}.png"), full_page=True)
