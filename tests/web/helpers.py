"""Driving the web apps with httpx the way a browser does: cookies kept, forms posted with
the CSRF token the page carried."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import httpx

from tests.api.conftest import STRONG_PASSWORD, new_email

_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def hidden_fields(page: str) -> dict[str, str]:
    """The hidden inputs of the first form on a page that has them (CSRF token, form key)."""
    found: dict[str, str] = {}
    for name, value in _HIDDEN.findall(page):
        found.setdefault(name, html.unescape(value))
    return found


async def post_form(
    client: httpx.AsyncClient, path: str, data: dict[str, Any], *, form_page: str | None = None
) -> httpx.Response:
    """GET the form's page (or ``form_page``), then POST ``data`` with its hidden fields."""
    page = await client.get(form_page or path)
    assert page.status_code == 200, page.text
    return await client.post(path, data={**hidden_fields(page.text), **data})


async def web_sign_up(
    client: httpx.AsyncClient, *, name: str = "Grace Hopper", email: str | None = None
) -> str:
    """Open an account through the sign-up form (signed in afterwards); returns the email."""
    address = email or new_email()
    response = await post_form(
        client,
        "/app/signup",
        {"full_name": name, "email": address, "password": STRONG_PASSWORD},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/app/kyc?welcome=1"
    return address


async def web_verify(client: httpx.AsyncClient, last_name: str = "Hopper") -> httpx.Response:
    """Pass (or, with a magic last name, fail) the sandbox KYC through the form."""
    return await post_form(
        client,
        "/app/kyc",
        {
            "first_name": "Grace",
            "last_name": last_name,
            "date_of_birth": "1980-12-09",
            "country": "US",
            "address": "1 Navy Yard, Arlington VA",
            "document_type": "passport",
            "document_number": "X1234567",
        },
    )


async def web_move(client: httpx.AsyncClient, path: str, data: dict[str, Any]) -> httpx.Response:
    """A movement form in its two steps: review (the quoted fee), then confirm."""
    review = await post_form(client, path, data)
    if review.status_code != 200 or 'data-testid="review"' not in review.text:
        return review  # refused at review: the form again, with its errors
    fields = hidden_fields(review.text)
    return await client.post(path, data={**fields, "step": "confirm"})


def transaction_id_of(response: httpx.Response) -> uuid.UUID:
    """The id in the /app/transactions/{id} a movement form redirected to."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/app/transactions/"), location
    return uuid.UUID(location.rsplit("/", 1)[1])
