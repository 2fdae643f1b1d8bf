"""The last route: an address under /app that is no page gets a page saying so (404), not the
API's JSON error. It comes after every other route, so it only sees what nothing matched."""

from __future__ import annotations

from starlette.responses import Response

from diboas.web.routing import PUBLIC, Page, WebRoutes

routes = WebRoutes()


@routes.add("/app/{path:path}", access=PUBLIC)
async def not_found(page: Page) -> Response:
    return page.render(
        "error.html",
        {"title": "Page not found", "message": "There is no page at this address."},
        status=404,
    )
