"""The dashboard and the money pages: deposit, withdraw, send, history, one transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, get_args

from starlette.responses import JSONResponse, Response

from diboas.api.errors import error_response
from diboas.balances import service as balances
from diboas.banking import service as banking
from diboas.banking.repository import HistoryFilter
from diboas.banking.schemas import (
    DepositIn,
    TransactionStatus,
    TransactionType,
    TransferIn,
    WithdrawalIn,
)
from diboas.banking.service import bank_accounts, history
from diboas.compliance import limits
from diboas.fees import schedule
from diboas.fees.schemas import QuoteOut
from diboas.kit.errors import DomainError
from diboas.kit.money import format_amount
from diboas.market.prices import service_for
from diboas.observability.metrics import FEE_QUOTES
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
# Every type the history holds can be filtered on (the API's own list).
TYPES = get_args(TransactionType)
STATUSES = get_args(TransactionStatus)
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
    sheet = await balances.valued(service_for(page.request.app.state.services), snap, None)
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


async def linked_accounts(page: Page) -> list[Any]:
    """The signed-in user's linked bank accounts, as the API shows them."""
    user_id = _user_id(page)
    found = await page.db.run(lambda s: bank_accounts.list_for(s, user_id))
    return [banking.bank_account_out(a) for a in found]


# What a review asks the Fee service to quote, per movement.
OPERATIONS: dict[movements.Kind, str] = {
    "deposit": "deposit",
    "withdrawal": "withdrawal",
    "transfer": "transfer",
}


async def _submit(
    page: Page,
    kind: movements.Kind,
    body_type: type[Any],
    fields: dict[str, str],
    form: tuple[str, dict[str, Any]],
) -> Response:
    """A movement form's POST, in two steps: review (the fee quoted by the Fee service and
    held for its lifetime), then confirm (the movement, charged exactly the quoted fee)."""
    template, context = form
    step = page.field("step")
    errors = FormErrors()
    if step == "confirm":
        body, errors = validate(body_type, {**fields, "quote_id": page.field("quote_id")})
        if body is not None:
            try:
                created = await movements.run(page, kind, body, page.field("form_key"))
            except DomainError as refusal:
                errors.add_domain_error(refusal)
            else:
                return page.redirect(f"/app/transactions/{created}")
    elif step != "edit":
        body, errors = validate(body_type, fields)
        if body is not None:
            try:
                quote = await _quote(page, kind, body)
            except DomainError as refusal:
                errors.add_domain_error(refusal)
            else:
                return _review(page, kind, fields, quote)
    return _form_page(page, template, errors, context)


async def _quote(page: Page, kind: movements.Kind, body: Any) -> QuoteOut:
    user = page.me()
    issued = await page.db.run(
        lambda s: schedule.request_quote(
            s,
            page.settings,
            user=user,
            operation=OPERATIONS[kind],
            amount=body.amount,
            currency=body.currency,
            method=getattr(body, "method", None),
        )
    )
    FEE_QUOTES.labels(OPERATIONS[kind]).inc()
    return QuoteOut.of(issued.quote, issued.scale)


def _review(page: Page, kind: movements.Kind, fields: dict[str, str], quote: QuoteOut) -> Response:
    amount, fee = Decimal(quote.amount), Decimal(quote.total_fee)
    # A deposit's fee comes out of what arrives; a withdrawal's and a transfer's are taken on
    # top of the amount (banking.service.movements).
    net = amount - fee if kind == "deposit" else amount + fee
    seconds_left = max(0, int((quote.expires_at - datetime.now(UTC)).total_seconds()))
    return page.render(
        "consumer/review.html",
        {
            "kind": kind,
            "action": page.request.url.path,
            "fields": {k: v for k, v in fields.items() if v},
            "quote": quote,
            "net": format_amount(net, 2),
            "seconds_left": seconds_left,
            "form_key": page.field("form_key") or movements.new_form_key(),
        },
    )


def _form_page(page: Page, template: str, errors: FormErrors, context: dict[str, Any]) -> Response:
    context = {"errors": errors, "form_key": movements.new_form_key(), **context}
    return page.render(template, context, status=errors.status_code if errors else 200)


@routes.add("/app/deposit", access="banking:deposit", methods=("GET", "POST"))
async def deposit(page: Page) -> Response:
    values = {"amount": "", "method": "card", "payment_method": "pm_card_visa"}
    values["bank_account_id"] = ""
    fields: dict[str, str] = {}
    if page.request.method == "POST":
        values = {k: page.field(k) for k in values}
        fields = {"amount": values["amount"], "currency": "USD", "method": values["method"]}
        if values["method"] == "ach":
            fields["bank_account_id"] = values["bank_account_id"]
        else:
            fields["payment_method"] = values["payment_method"]
    context = {
        "values": values,
        "cards": SANDBOX_CARDS,
        "accounts": await linked_accounts(page),
        "fees": await _fee_rows(page, "deposit"),
    }
    form = ("consumer/deposit.html", context)
    if page.request.method == "POST":
        return await _submit(page, "deposit", DepositIn, fields, form)
    return _form_page(page, form[0], FormErrors(), context)


@routes.add("/app/withdraw", access="banking:withdraw", methods=("GET", "POST"))
async def withdraw(page: Page) -> Response:
    values = {"amount": "", "bank_account_id": ""}
    if page.request.method == "POST":
        values = {k: page.field(k) for k in values}
    context = {
        "values": values,
        "accounts": await linked_accounts(page),
        "fees": await _fee_rows(page, "withdrawal"),
    }
    form = ("consumer/withdraw.html", context)
    if page.request.method == "POST":
        return await _submit(page, "withdrawal", WithdrawalIn, {**values, "currency": "USD"}, form)
    return _form_page(page, form[0], FormErrors(), context)


@routes.add("/app/send", access="banking:transfer", methods=("GET", "POST"))
async def send(page: Page) -> Response:
    values = {"recipient_email": "", "amount": "", "note": ""}
    if page.request.method == "POST":
        values = {k: page.field(k) for k in values}
    form = ("consumer/send.html", {"values": values})
    if page.request.method == "POST":
        return await _submit(page, "transfer", TransferIn, {**values, "currency": "USD"}, form)
    return _form_page(page, form[0], FormErrors(), form[1])


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
        return error_response(page.request, 404, "not_found", "no such transaction")
    return JSONResponse({"status": found.status, "failure_reason": found.failure_reason})
