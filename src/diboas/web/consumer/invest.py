"""Investing in the consumer app: prices, the portfolio, and buy/sell with a locked quote.

A trade is reviewed before it happens: the quote locks the price and fee (and holds the money,
or the asset for a sale) for its lifetime, counted down on the page; confirming trades exactly
that quote, once. The same steps as the API (``diboas.investing.trading``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response

from diboas.investing import schemas, trading
from diboas.investing.service import portfolio, quotes, venues_for
from diboas.kit.errors import DomainError, InvalidRequestError
from diboas.market.prices import service_for
from diboas.web.forms import FormErrors, validate
from diboas.web.routing import Page, WebRoutes

routes = WebRoutes()
SIDES = (("buy", "Buy"), ("sell", "Sell"))


@routes.add("/app/invest", access="investing:trade", methods=("GET", "POST"))
async def invest(page: Page) -> Response:
    values = {"side": "buy", "asset": "BTC", "amount_usd": "", "quantity": ""}
    errors = FormErrors()
    if page.request.method == "POST":
        values = {k: page.field(k) for k in values}
        step = page.field("step")
        services = page.request.app.state.services
        if step == "confirm":
            try:
                order = await trading.trade_quote(
                    page.db, services, page.me(), uuid.UUID(page.field("quote_id"))
                )
            except (DomainError, ValueError) as refusal:
                errors.add_domain_error(_as_domain_error(refusal))
            else:
                return page.redirect(f"/app/transactions/{order.id}")
        elif step != "edit":
            if values["side"] == "buy":
                values["quantity"] = ""  # a purchase is sized in USD here
            else:
                values["amount_usd"] = ""  # a sale, by quantity
            body, errors = validate(schemas.QuoteIn, values)
            if body is not None:
                try:
                    quote = await trading.quote(page.db, services, page.me(), body)
                except DomainError as refusal:
                    errors.add_domain_error(refusal)
                else:
                    return _review(page, values, quote)
    return await _invest_page(page, values, errors)


def _as_domain_error(error: Exception) -> DomainError:
    if isinstance(error, DomainError):
        return error
    return InvalidRequestError("this quote is not valid; ask for a new one")


async def _invest_page(page: Page, values: dict[str, str], errors: FormErrors) -> Response:
    user_id = page.me().id
    venues = venues_for(page.request.app.state.services, page.settings)
    found = await page.db.run(lambda s: portfolio.basis(s, user_id))
    prices = service_for(page.request.app.state.services)
    assets = sorted(quotes.tradable(venues))
    as_of, values_usd = await prices.prices_for(sorted(set(assets) | set(found.assets())), None)
    context: dict[str, Any] = {
        "values": values,
        "errors": errors,
        "sides": SIDES,
        "assets": [(a, a) for a in assets],
        "prices": [(a, values_usd[a]) for a in assets if a in values_usd],
        "portfolio": portfolio.value(found, values_usd, as_of),
        "as_of": as_of,
    }
    return page.render(
        "consumer/invest.html", context, status=errors.status_code if errors else 200
    )


def _review(page: Page, values: dict[str, str], quote: schemas.QuoteOut) -> Response:
    seconds_left = max(0, int((quote.expires_at - datetime.now(UTC)).total_seconds()))
    return page.render(
        "consumer/invest_review.html",
        {"quote": quote, "values": values, "seconds_left": seconds_left},
    )
