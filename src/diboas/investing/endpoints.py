"""/api/v1 routes of the investing package: quotes, orders, portfolio.

Orders take an optional ``Idempotency-Key`` like banking's movements: the first answer
(success or refusal) is stored with its effect and replayed for the same key and body.

Permissions: trading declares ``investing:trade``, reading ``investing:read``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.compliance import audit
from diboas.fees.service import QuoteMismatchError
from diboas.identity.dependencies import CurrentCaller, requires
from diboas.investing import repository, schemas, trading
from diboas.investing import tasks as _tasks  # noqa: F401 - registers the reconcile job
from diboas.investing.repository import TradeQuote
from diboas.investing.service import execution, portfolio, quotes, venues_for
from diboas.investing.views import order_out, quote_out, scale_of, usd
from diboas.kit.errors import DomainError, NotFoundError
from diboas.kit.money import format_amount
from diboas.ledger.idempotency import IdempotencyPolicy, run_idempotent
from diboas.market.endpoints import PricesDep

router = APIRouter(tags=["investing"])

TRADE = "investing:trade"
READ = "investing:read"

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes a retry safe: the same key and body give the first answer again.",
    ),
]


@router.post(
    "/investing/quotes",
    status_code=201,
    dependencies=[requires(TRADE)],
    summary="A price-locked trade quote (the money is held until it expires)",
)
async def create_quote(
    body: schemas.QuoteIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
) -> schemas.QuoteOut:
    return await trading.quote(db, request.app.state.services, caller.user, body)


@router.get(
    "/investing/quotes/{quote_id}", dependencies=[requires(READ)], summary="One of your quotes"
)
async def get_quote(
    quote_id: uuid.UUID, caller: CurrentCaller, db: DatabaseDep
) -> schemas.QuoteOut:
    async def read(session: AsyncSession) -> schemas.QuoteOut:
        quote = await repository.get_quote(session, quote_id, user_id=caller.id)
        if quote is None:
            raise execution.QuoteNotFoundError("no such quote", details={"quote_id": str(quote_id)})
        return quote_out(quote, await scale_of(session, quote.asset))

    return await db.run(read)


def _check_matches(body: schemas.OrderIn, quote: TradeQuote, trade: quotes.TradeRequest) -> None:
    asked = (body.side, body.asset, trade.amount_usd, trade.quantity)
    quoted = (
        quote.side,
        quote.asset,
        quote.amount_usd if quote.requested == "amount_usd" else None,
        quote.quantity if quote.requested == "quantity" else None,
    )
    if asked != quoted:
        raise QuoteMismatchError(
            "the quote was for a different trade",
            details={
                "quote": {
                    "side": quote.side,
                    "asset": quote.asset,
                    quote.requested: str(
                        quote.amount_usd if quote.requested == "amount_usd" else quote.quantity
                    ),
                }
            },
        )


@router.post(
    "/investing/orders",
    status_code=201,
    response_model=schemas.OrderOut | schemas.FundedOrderOut,
    dependencies=[requires(TRADE)],
    summary="Buy or sell: at a quote's locked price, or quoted and executed at once; or buy "
    "with a deposit made in the same request (funding)",
)
async def create_order(
    body: schemas.OrderIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    services = request.app.state.services
    venues = venues_for(services, settings)
    trade = quotes.parse_trade(
        venues, side=body.side, asset=body.asset, amount_usd=body.amount_usd, quantity=body.quantity
    )
    quote_ids: list[uuid.UUID] = [] if body.quote_id is None else [body.quote_id]
    # A deposit-then-buy is priced now, outside any transaction (the reference for its bound).
    funded = None if body.funding is None else await trading.price_order(db, services, body)

    async def accept(session: AsyncSession) -> tuple[int, Any]:
        if funded is not None:
            context = audit.request_context(request, caller.user)
            accepted = await trading.accept_funded(session, db, caller.user, body, funded, context)
            return 201, accepted.model_dump(mode="json")
        if not quote_ids:
            # Quoted in a transaction of its own, so that an ambiguous venue failure leaves a
            # quote (and its hold) to reconcile; made once even if this unit of work reruns.
            priced = await quotes.price_trade(venues, trade, max_age=quotes.max_data_age(settings))
            made = await db.run(
                lambda s: quotes.lock_quote(s, settings, user=caller.user, priced=priced)
            )
            quote_ids.append(made.id)
        else:
            presented = await repository.get_quote(session, quote_ids[0], user_id=caller.id)
            if presented is not None:
                _check_matches(body, presented, trade)
        order = await execution.execute(session, venues, user=caller.user, quote_id=quote_ids[0])
        quote = await repository.get_quote(session, quote_ids[0], user_id=caller.id)
        assert quote is not None  # noqa: S101 - just executed
        out = order_out(order, quote, await scale_of(session, order.asset))
        return 201, out.model_dump(mode="json")

    try:
        if idempotency_key is None:
            status_code, content = await db.run(accept)
            replayed = False
        else:
            stored = await run_idempotent(
                db.sessions,
                scope=f"user:{caller.id}",
                key=idempotency_key,
                request={
                    "method": request.method,
                    "path": request.url.path,
                    "body": body.model_dump(mode="json"),
                },
                work=accept,
                policy=IdempotencyPolicy.from_settings(db.settings),
            )
            status_code, content, replayed = stored.status_code, stored.body, stored.replayed
    except DomainError as refusal:
        if quote_ids:
            failed_quote, error = quote_ids[0], refusal

            async def clean_up(session: AsyncSession) -> None:
                await execution.after_failure(
                    session,
                    user_id=caller.id,
                    quote_id=failed_quote,
                    error=error,
                    reconcile_after=timedelta(seconds=settings.investing_reconcile_delay_seconds),
                )

            await db.run(clean_up)
        raise
    if replayed and isinstance(content, dict) and isinstance(content.get("error"), dict):
        request_id = getattr(request.state, "request_id", None)
        content = {"error": {**content["error"], "request_id": request_id}}
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(content, status_code=status_code, headers=headers)


@router.get(
    "/investing/orders/{order_id}", dependencies=[requires(READ)], summary="One of your orders"
)
async def get_order(
    order_id: uuid.UUID, caller: CurrentCaller, db: DatabaseDep
) -> schemas.OrderOut:
    async def read(session: AsyncSession) -> schemas.OrderOut:
        order = await repository.get_order(session, order_id, user_id=caller.id)
        quote = (
            None
            if order is None
            else await repository.get_quote(session, order.quote_id, user_id=caller.id)
        )
        if order is None or quote is None:
            raise NotFoundError("no such order", details={"order_id": str(order_id)})
        return order_out(order, quote, await scale_of(session, order.asset))

    return await db.run(read)


@router.get(
    "/investing/portfolio",
    dependencies=[requires(READ)],
    summary="Holdings with FIFO cost basis, realised and unrealised P&L",
)
async def get_portfolio(
    caller: CurrentCaller, db: DatabaseDep, prices: PricesDep, response: Response
) -> schemas.PortfolioOut:
    response.headers["Cache-Control"] = "no-store"
    found = await db.run(lambda s: portfolio.basis(s, caller.id))
    market = await prices.valuation(found.assets())
    valued = portfolio.value(
        found, market.prices, market.as_of, priced_at=market.priced_at, stale=market.stale
    )
    return schemas.PortfolioOut(
        holdings=[
            schemas.HoldingOut(
                asset=h.asset,
                quantity=format_amount(h.quantity, h.scale),
                cost_basis=usd(h.cost_basis),
                average_cost=None if h.average_cost is None else usd(h.average_cost),
                price=usd(h.price),
                value_usd=usd(h.value_usd),
                unrealised_pnl=usd(h.unrealised_pnl),
                realised_pnl=usd(h.realised_pnl),
                priced_at=h.priced_at,
                price_stale=h.price_stale,
            )
            for h in valued.holdings
        ],
        total_value_usd=usd(valued.total("value_usd")),
        total_cost_basis=usd(valued.total("cost_basis")),
        unrealised_pnl=usd(valued.total("unrealised_pnl")),
        realised_pnl=usd(valued.total("realised_pnl")),
        as_of=market.as_of,
        price_stale=bool(market.stale),
    )
