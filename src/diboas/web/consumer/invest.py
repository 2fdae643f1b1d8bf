"""Investing in the consumer app: prices, the portfolio, and buy/sell with a locked quote.

A trade is reviewed before it happens: the quote locks the price and fee (and holds the money,
or the asset for a sale) for its lifetime, counted down on the page; confirming trades exactly
that quote, once. A purchase may also be paid by card or bank transfer (deposit-then-buy): its
review shows the deposit, the fee, the price now and the highest price it may be bought at
once the money arrives; confirming places it once (the form's key). The same steps as the API
(``diboas.investing.trading``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from diboas.compliance import audit
from diboas.investing import schemas, trading
from diboas.investing.service import portfolio, quotes, venues_for
from diboas.kit.errors import DomainError, InvalidRequestError
from diboas.market.prices import service_for
from diboas.web.consumer.money import SANDBOX_CARDS, linked_accounts
from diboas.web.consumer.movements import new_form_key, once
from diboas.web.forms import FormErrors, validate
from diboas.web.routing import Page, WebRoutes
from diboas.web.templating import accounts_options

routes = WebRoutes()
SIDES = (("buy", "Buy"), ("sell", "Sell"))
BALANCE = "balance"  # pay from the USD banking balance (a locked quote), or by a deposit


@routes.add("/app/invest", access="investing:trade", methods=("GET", "POST"))
async def invest(page: Page) -> Response:
    values = {"side": "buy", "asset": "BTC", "amount_usd": "", "quantity": "", "pay_with": BALANCE}
    errors = FormErrors()
    if page.request.method == "POST":
        values = {k: page.field(k) for k in values}
        step = page.field("step")
        answer: Response | None = None
        if step == "confirm":
            answer, errors = await _confirm_quote(page)
        elif values["side"] == "buy" and values["pay_with"] not in ("", BALANCE):
            if step != "edit":
                answer, errors = await _funded(page, values, step)
        elif step != "edit":
            answer, errors = await _quote(page, values)
        if answer is not None:
            return answer
    return await _invest_page(page, values, errors)


async def _confirm_quote(page: Page) -> tuple[Response | None, FormErrors]:
    """Trade the quote the review showed (once: a quote trades at most once)."""
    errors = FormErrors()
    services = page.request.app.state.services
    try:
        order = await trading.trade_quote(
            page.db, services, page.me(), uuid.UUID(page.field("quote_id"))
        )
    except (DomainError, ValueError) as refusal:
        errors.add_domain_error(_as_domain_error(refusal))
        return None, errors
    return page.redirect(f"/app/transactions/{order.id}"), errors


async def _quote(page: Page, values: dict[str, str]) -> tuple[Response | None, FormErrors]:
    """Lock a quote for the trade paid from (or into) the balance, and show it for review."""
    if values["side"] == "buy":
        values["quantity"] = ""  # a purchase is sized in USD here
    else:
        values["amount_usd"] = ""  # a sale, by quantity
    fields = {k: values[k] for k in ("side", "asset", "amount_usd", "quantity")}
    body, errors = validate(schemas.QuoteIn, fields)
    if body is None:
        return None, errors
    try:
        quote = await trading.quote(page.db, page.request.app.state.services, page.me(), body)
    except DomainError as refusal:
        errors.add_domain_error(refusal)
        return None, errors
    return _review(page, values, quote), errors


async def _funded(
    page: Page, values: dict[str, str], step: str
) -> tuple[Response | None, FormErrors]:
    """A purchase paid by a deposit: its terms for review, then (``confirm_funded``) placed."""
    values["quantity"] = ""
    body, errors = validate(schemas.OrderIn, _funded_fields(values))
    if body is None:
        return None, errors
    try:
        return await _funded_step(page, values, body, step), errors
    except DomainError as refusal:
        errors.add_domain_error(refusal)
        return None, errors


def _funded_fields(values: dict[str, str]) -> dict[str, Any]:
    """The funded order the form describes: a buy by USD amount paid by a card ("card:<token>")
    or a linked bank account ("ach:<id>")."""
    method, _, source = values["pay_with"].partition(":")
    funding: dict[str, str] = {"method": method}
    funding["bank_account_id" if method == "ach" else "payment_method"] = source
    return {
        "side": "buy",
        "asset": values["asset"],
        "amount_usd": values["amount_usd"],
        "funding": funding,
    }


async def _funded_step(
    page: Page, values: dict[str, str], body: schemas.OrderIn, step: str
) -> Response:
    user = page.me()
    priced = await trading.price_order(page.db, page.request.app.state.services, body)
    if step != "confirm_funded":
        terms = await trading.funded_terms(page.db, user, body, priced)
        return page.render(
            "consumer/invest_funded_review.html",
            {"terms": terms, "values": values, "form_key": new_form_key()},
        )
    context = audit.request_context(page.request, user)

    async def accept(session: AsyncSession) -> dict[str, Any]:
        out = await trading.accept_funded(session, page.db, user, body, priced, context)
        return out.model_dump(mode="json")

    accepted, _ = await once(page, f"user:{user.id}", body.model_dump(mode="json"), accept)
    return page.redirect(f"/app/transactions/{accepted['id']}")


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
        "pay_with": _pay_with(await linked_accounts(page)),
        "as_of": as_of,
    }
    return page.render(
        "consumer/invest.html", context, status=errors.status_code if errors else 200
    )


def _pay_with(accounts: list[Any]) -> list[tuple[str, str]]:
    """What a purchase can be paid with: the balance, a (sandbox) card, a linked account."""
    cards = [(f"card:{token}", f"Card: {label}") for token, label in SANDBOX_CARDS]
    banks = [
        (f"ach:{value}", f"Bank transfer: {label}") for value, label in accounts_options(accounts)
    ]
    return [(BALANCE, "Your USD balance"), *cards, *banks]


def _review(page: Page, values: dict[str, str], quote: schemas.QuoteOut) -> Response:
    seconds_left = max(0, int((quote.expires_at - datetime.now(UTC)).total_seconds()))
    return page.render(
        "consumer/invest_review.html",
        {"quote": quote, "values": values, "seconds_left": seconds_left},
    )
