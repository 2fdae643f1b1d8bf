"""The marketing site: public, cacheable pages that never set or read a cookie, and a fee
schedule read live from the Fee service's table."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.web.marketing.articles import ARTICLES

HOUR = "public, max-age=3600"


@pytest.mark.parametrize(
    "path",
    ["/", "/banking", "/investing", "/defi", "/learn", *[f"/learn/{a.slug}" for a in ARTICLES]],
)
async def test_product_and_learn_pages_are_public_and_cached_an_hour(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == HOUR
    # Shared caches keep these pages: nothing personal may be in them.
    assert "set-cookie" not in response.headers
    assert 'href="/app/signup"' in response.text


async def test_an_unknown_article_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/learn/no-such-article")
    assert response.status_code == 404
    assert "There is no article" in response.text


async def test_the_fee_page_shows_the_schedule_as_stored(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    description = f"Test component {uuid.uuid4().hex[:8]}"
    # A zero fee for a tier no user of this run reaches: visible, charges nothing.
    async with engine.begin() as conn:
        row_id = (
            await conn.execute(
                text("""INSERT INTO fee_schedule (operation, tier, component, currency, percent,
                                                  fixed, minimum, maximum, description)
                        VALUES ('defi_withdraw', 2, 'network', 'USD', 0.25, 1.5, 0, 7, :d)
                        RETURNING id"""),
                {"d": description},
            )
        ).scalar_one()
    try:
        response = await client.get("/fees")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=60"
        page = response.text
        assert "Card processing (2.9% + $0.30)" in page
        row = page[page.index(description) :]
        row = row[: row.index("</tr>")]
        assert "0.25 %" in row
        assert "1.50 USD" in row
        assert "7.00 USD" in row
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM fee_schedule WHERE id = :id"), {"id": row_id})
    assert description not in (await client.get("/fees")).text
