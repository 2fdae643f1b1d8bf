"""What a person does in the browser, step by step (labels, not CSS selectors, find the
controls: a control without a label cannot be found, so every flow also checks labels)."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.api.conftest import STRONG_PASSWORD, new_email


async def sign_up(page: Page, name: str = "Katherine Johnson") -> str:
    """Open an account from the marketing site's call to action; returns the email."""
    email = new_email()
    await page.goto("/")
    await page.get_by_role("link", name="Open an account").first.click()
    await expect(page).to_have_url(re.compile(r"/app/signup$"))
    await page.get_by_label("Full name").fill(name)
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(STRONG_PASSWORD)
    await page.get_by_role("button", name="Create my account").click()
    await expect(page).to_have_url(re.compile(r"/app/kyc\?welcome=1$"))
    return email


async def verify_identity(page: Page, last_name: str = "Johnson") -> None:
    """Fill the KYC form (the sandbox approves any last name but its magic ones)."""
    await page.goto("/app/kyc")
    await page.get_by_label("First name").fill("Katherine")
    await page.get_by_label("Last name").fill(last_name)
    await page.get_by_label("Date of birth").fill("1970-08-26")
    await page.get_by_label("Country (two-letter code)").fill("US")
    await page.get_by_label("Address").fill("1 Langley Blvd, Hampton VA")
    await page.get_by_label("Document type").select_option("passport")
    await page.get_by_label("Document number").fill("P9876543")
    await page.get_by_role("button", name="Verify my identity").click()


async def deposit(page: Page, amount: str) -> None:
    """Add money by (sandbox) card and wait on the transaction page until it settles."""
    await page.goto("/app")
    await page.get_by_role("link", name="Add money").first.click()
    await page.get_by_label("Amount in USD").fill(amount)
    await page.get_by_label("Card", exact=True).check()
    await page.get_by_role("button", name="Review").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Review your deposit")
    await page.get_by_role("button", name="Confirm and add money").click()
    await expect(page).to_have_url(re.compile(r"/app/transactions/[0-9a-f-]{36}$"))
    # The page's script polls the status; the in-process worker settles the sandbox payment.
    await expect(page.get_by_test_id("status")).to_have_text("completed", timeout=30_000)


async def link_bank_account(page: Page) -> None:
    await page.goto("/app/settings")
    await page.get_by_text("Link a bank account").click()
    await page.get_by_label("Bank name").fill("First Test Bank")
    await page.get_by_label("Routing number").fill("011000015")
    await page.get_by_label("Account number").fill("000123456789")
    await page.get_by_role("button", name="Link account").click()
    await expect(page.get_by_role("status")).to_have_text("The bank account is linked.")


async def sign_in(page: Page, email: str) -> None:
    await page.goto("/app/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(STRONG_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/app$"))
