"""The last routes: an address under /business or /app that is no page gets a page saying so
(404), not the API's JSON error. They come after every other route, so they only see what
nothing matched."""

from __future__ import annotations

from starlette.responses import Response

from diboas.web.routing import PUBLIC, Page, WebRoutes

routes = WebRoutes()


@routes.add("/app/{path:path}", access=PUBLIC)  # applied last: the very last route
@routes.add("/business/{path:path}", access=PUBLIC)
async def not_found(page: Page) -> Response:
    return page.render(
        "error.html",
        {"title": "Page not found", "message": "There is no page at this address."},
        status=404,
    )
