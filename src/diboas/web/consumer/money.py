"""The dashboard and the money pages: deposit, withdraw, send, history, one transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from starlette.responses import JSONResponse, Response

from diboas.balances import service as balances
from diboas.banking import service as banking
from diboas.banking.repository import HistoryFilter
from diboas.banking.schemas import DepositIn, TransferIn, WithdrawalIn
from diboas.banking.service import bank_accounts, history
from diboas.compliance import limits
from diboas.fees import schedule
from diboas.kit.errors import DomainError
from diboas.market.prices import service_for
from diboas.web.consumer import movements
from diboas.web.forms import FormErrors, validate
from diboas.web.routing import Page, WebRoutes

routes = WebRoutes()

# The sandbox's documented test cards (providers/payments.py). A real card form would hand
# over a token from the card processor's own page; the sandbox takes these tokens instead.
SANDBOX_CARDS = (
    ("pm_card_visa", "Test Visa card (succeeds)"),
    ("pm_card_chargeDeclined", "Test card that is declined"),
    ("pm_card_insufficientFunds", "Test card without funds"),
)
TYPES = ("deposit", "withdrawal", "transfer_out", "transfer_in")
STATUSES = ("pending", "processing", "completed", "failed", "reversed")
PAGE_SIZE = 20


def _user_id(page: Page) -> uuid.UUID:
    return page.me().id


@routes.add("/app", access="balances:read")
async def dashboard(page: Page) -> Response:
    user_id = _user_id(page)
    user = page.me()

    async def read(session: Any) -> tuple[Any, list[Any], list[limits.Limit]]:
        snap = await balances.snapshot(session, owner_id=user_id, at=None)
        recent = await history.page(session, user_id=user_id, limit=5)
        return snap, recent.items, await limits.status(session, page.settings, user)

    snap, recent, limit_rows = await page.db.run(read)
    # Valued after the transaction: the price feed is never asked while a connection is held.
    prices = service_for(page.request.app.state.services)
    _, quotes = await prices.prices_for(balances.assets_to_price(snap), None)
    sheet = balances.value(snap, quotes)
    return page.render(
        "consumer/dashboard.html",
        {
            "sheet": sheet,
            "recent": [banking.transaction_out(t) for t in recent],
            "daily_limits": [x for x in limit_rows if x.period == "daily"],
        },
    )


async def _fee_rows(page: Page, operation: str) -> list[schedule.ScheduleRow]:
    return await page.db.run(lambda s: schedule.schedule(s, operation=operation))


async def _accounts(page: Page) -> list[Any]:
    user_id = _user_id(page)
    found = await page.db.run(lambda s: bank_accounts.list_for(s, user_id))
    return [banking.bank_account_out(a) for a in found]


async def _movement_form(
    page: Page, kind: movements.Kind, body_type: type[Any], values: dict[str, str]
) -> tuple[uuid.UUID | None, FormErrors]:
    body, errors = validate(body_type, values)
    if body is None:
        return None, errors
    try:
        return await movements.run(page, kind, body, page.field("form_key")), errors
    except DomainError as refusal:
        errors.add_domain_error(refusal)
        return None, errors


def _form_page(page: Page, template: str, errors: FormErrors, context: dict[str, Any]) -> Response:
    context = {"errors": errors, "form_key": movements.new_form_key(), **context}
    return page.render(template, context, status=errors.status_code if errors else 200)


@routes.add("/app/deposit", access="banking:deposit", methods=("GET", "POST"))
async def deposit(page: Page) -> Response:
    values = {"amount": "", "method": "card", "payment_method": "pm_card_visa"}
    errors = FormErrors()
    if page.request.method == "POST":
        values = {k: page.field(k) for k in ("amount", "method", "payment_method")}
        values["bank_account_id"] = page.field("bank_account_id")
        fields = {"amount": values["amount"], "currency": "USD", "method": values["method"]}
        if values["method"] == "ach":
            fields["bank_account_id"] = values["bank_account_id"]
        else:
            fields["payment_method"] = values["payment_method"]
        created, errors = await _movement_form(page, "deposit", DepositIn, fields)
        if created is not None:
            return page.redirect(f"/app/transactions/{created}")
    return _form_page(
        page,
        "consumer/deposit.html",
        errors,
        {
            "values": values,
            "cards": SANDBOX_CARDS,
            "accounts": await _accounts(page),
            "fees": await _fee_rows(page, "deposit"),
        },
    )


@routes.add("/app/withdraw", access="banking:withdraw", methods=("GET", "POST"))
async def withdraw(page: Page) -> Response:
    values = {"amount": "", "bank_account_id": ""}
    errors = FormErrors()
    if page.request.method == "POST":
        values = {k: page.field(k) for k in values}
        fields = {**values, "currency": "USD"}
        created, errors = await _movement_form(page, "withdrawal", WithdrawalIn, fields)
        if created is not None:
            return page.redirect(f"/app/transactions/{created}")
    return _form_page(
        page,
        "consumer/withdraw.html",
        errors,
        {
            "values": values,
            "accounts": await _accounts(page),
            "fees": await _fee_rows(page, "withdrawal"),
        },
    )


@routes.add("/app/send", access="banking:transfer", methods=("GET", "POST"))
async def send(page: Page) -> Response:
    values = {"recipient_email": "", "amount": "", "note": ""}
    errors = FormErrors()
    if page.request.method == "POST":
        values = {k: page.field(k) for k in values}
        fields = {**values, "currency": "USD"}
        created, errors = await _movement_form(page, "transfer", TransferIn, fields)
        if created is not None:
            return page.redirect(f"/app/transactions/{created}")
    return _form_page(page, "consumer/send.html", errors, {"values": values})


def _day(value: str, *, end: bool) -> datetime | None:
    # A date field gives YYYY-MM-DD (days in UTC); "to" includes its whole day.
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start + timedelta(days=1) if end else start


@routes.add("/app/transactions", access="transactions:read")
async def transactions(page: Page) -> Response:
    query = page.request.query_params
    chosen = {
        "type": query.get("type", "") if query.get("type") in TYPES else "",
        "status": query.get("status", "") if query.get("status") in STATUSES else "",
        "since": query.get("since", "")[:10],
        "until": query.get("until", "")[:10],
    }
    for name in ("since", "until"):
        if _day(chosen[name], end=False) is None:
            chosen[name] = ""  # not a date: the filter is dropped, and the field shows it
    filters = HistoryFilter(
        type=chosen["type"] or None,
        status=chosen["status"] or None,
        since=_day(chosen["since"], end=False),
        until=_day(chosen["until"], end=True),
    )
    cursor = query.get("cursor") or None
    user_id = _user_id(page)
    error = ""
    try:
        found = await page.db.run(
            lambda s: history.page(
                s, user_id=user_id, limit=PAGE_SIZE, cursor=cursor, filters=filters
            )
        )
        items, next_cursor = [banking.transaction_out(t) for t in found.items], found.next_cursor
    except DomainError as refusal:
        items, next_cursor, error = [], None, refusal.message
    return page.render(
        "consumer/transactions.html",
        {
            "items": items,
            "next_cursor": next_cursor,
            "chosen": chosen,
            "types": TYPES,
            "statuses": STATUSES,
            "error": error,
        },
        status=422 if error else 200,
    )


async def _one(page: Page) -> Any:
    try:
        transaction_id = uuid.UUID(page.request.path_params["transaction_id"])
    except ValueError:
        return None
    user_id = _user_id(page)
    try:
        found = await page.db.run(
            lambda s: history.get(s, user_id=user_id, transaction_id=transaction_id)
        )
    except DomainError:
        return None
    return banking.transaction_out(found)


@routes.add("/app/transactions/{transaction_id}", access="transactions:read")
async def transaction(page: Page) -> Response:
    found = await _one(page)
    if found is None:
        return page.render(
            "error.html",
            {"title": "Not found", "message": "There is no such transaction in your account."},
            status=404,
        )
    return page.render("consumer/transaction.html", {"t": found})


@routes.add("/app/transactions/{transaction_id}/status", access="transactions:read")
async def transaction_status(page: Page) -> Response:
    """What the transaction page's script polls while a movement settles."""
    found = await _one(page)
    if found is None:
        return JSONResponse({"error": "not_found"}, status_code=404)
    return JSONResponse({"status": found.status, "failure_reason": found.failure_reason})
