"""Static files: every asset is served by the platform under a content-hashed name, cached
for a year as immutable; pages link only to the platform itself (no CDN)."""

from __future__ import annotations

import hashlib
import re

import httpx

from diboas.web.assets import IMMUTABLE, STATIC_DIR, Assets
from diboas.web.templating import TEMPLATES_DIR


async def test_pages_link_assets_by_hashed_name_cached_for_a_year(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/")).text
    urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', page)
    assert {u.rsplit(".", 1)[1] for u in urls} >= {"css", "js", "svg"}
    for url in urls:
        assert re.fullmatch(r"/static/[a-z/]+\.[0-9a-f]{12}\.(css|js|svg)", url), url
        response = await client.get(url)
        assert response.status_code == 200
        assert response.headers["cache-control"] == IMMUTABLE
        assert response.headers["x-content-type-options"] == "nosniff"
        again = await client.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304


def test_the_hashed_name_is_the_content_digest() -> None:
    assets = Assets()
    url = assets.url("css/diboas.css")
    body = (STATIC_DIR / "css" / "diboas.css").read_bytes()
    assert hashlib.sha256(body).hexdigest()[:12] in url


async def test_unknown_or_unhashed_static_names_are_404(client: httpx.AsyncClient) -> None:
    for path in ("/static/css/diboas.css", "/static/../settings.py", "/static/nothing.css"):
        assert (await client.get(path)).status_code == 404


def test_templates_and_assets_name_no_other_host() -> None:
    # No CDN: every script, style sheet, font and image comes from the platform.
    offenders = []
    for path in [*TEMPLATES_DIR.rglob("*.html"), *STATIC_DIR.rglob("*.*")]:
        content = path.read_text(errors="replace")
        offenders += [
            f"{path.name}: {url}"
            for url in re.findall(r"https?://[^\s\"')]+", content)
            if not url.startswith("http://www.w3.org/2000/svg")  # an XML namespace, not a fetch
        ]
    assert offenders == []
