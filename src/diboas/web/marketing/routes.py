"""Marketing pages: products, the live fee schedule, learn articles, sign-up.

These pages never look at who is asking (no cookie is read or set), so shared caches may keep
them: product and learn pages for an hour, the fee schedule — read live from the Fee
service's table — for a minute, like ``GET /api/v1/fees/schedule``.
"""

from __future__ import annotations

from starlette.responses import Response

from diboas.fees import schedule
from diboas.web.marketing.articles import ARTICLES, BY_SLUG
from diboas.web.routing import PUBLIC, Page, WebRoutes

routes = WebRoutes()

CACHE_ONE_HOUR = "public, max-age=3600"
CACHE_SCHEDULE = "public, max-age=60"

OPERATION_NAMES = {
    "deposit": "Add money",
    "withdrawal": "Withdraw to your bank",
    "transfer": "Send to a diBoaS user",
    "buy": "Buy crypto",
    "sell": "Sell crypto",
    "defi_deposit": "Put money into a DeFi strategy",
    "defi_withdraw": "Take money out of a DeFi strategy",
}
METHOD_NAMES = {"card": "by card", "ach": "by bank transfer (ACH)"}


def _cached(response: Response, policy: str = CACHE_ONE_HOUR) -> Response:
    response.headers["Cache-Control"] = policy
    return response


@routes.add("/", access=PUBLIC)
async def home(page: Page) -> Response:
    return _cached(page.render("marketing/home.html", {"articles": ARTICLES}))


@routes.add("/banking", access=PUBLIC)
async def banking(page: Page) -> Response:
    return _cached(page.render("marketing/banking.html"))


@routes.add("/investing", access=PUBLIC)
async def investing(page: Page) -> Response:
    return _cached(page.render("marketing/investing.html"))


@routes.add("/defi", access=PUBLIC)
async def defi(page: Page) -> Response:
    return _cached(page.render("marketing/defi.html"))


@routes.add("/fees", access=PUBLIC)
async def fees(page: Page) -> Response:
    rows = await page.db.run(schedule.schedule)
    grouped: dict[str, list[schedule.ScheduleRow]] = {}
    for row in rows:
        grouped.setdefault(row.operation, []).append(row)
    groups = [(OPERATION_NAMES.get(op, op), items) for op, items in grouped.items()]
    return _cached(
        page.render("marketing/fees.html", {"groups": groups, "methods": METHOD_NAMES}),
        CACHE_SCHEDULE,
    )


@routes.add("/learn", access=PUBLIC)
async def learn(page: Page) -> Response:
    return _cached(page.render("marketing/learn.html", {"articles": ARTICLES}))


@routes.add("/learn/{slug}", access=PUBLIC)
async def article(page: Page) -> Response:
    found = BY_SLUG.get(page.request.path_params["slug"])
    if found is None:
        return page.render(
            "error.html",
            {"title": "Not found", "message": "There is no article at this address."},
            status=404,
        )
    return _cached(page.render("marketing/article.html", {"article": found}))
