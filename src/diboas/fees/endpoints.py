"""/api/v1 routes of the fees package."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Request, Response

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.fees import schedule
from diboas.fees.schemas import QuoteIn, QuoteOut, ScheduleRowOut
from diboas.identity.dependencies import CurrentCaller, public, requires
from diboas.investing.service import venues_for
from diboas.investing.service.quotes import max_data_age, trade_route
from diboas.observability.metrics import FEE_QUOTES

router = APIRouter(tags=["fees"])

# The schedule changes by migration or by an operator, rarely; a minute of caching in front
# of the marketing site is harmless.
_SCHEDULE_CACHE = "public, max-age=60"


@router.post(
    "/fees/quote", status_code=201, dependencies=[requires("fees:quote")], summary="Quote a fee"
)
async def quote(
    body: QuoteIn, caller: CurrentCaller, db: DatabaseDep, settings: SettingsDep, request: Request
) -> QuoteOut:
    """The fee a movement would be charged, held for ``fee_quote_ttl_seconds``. A buy or
    sell naming its ``trade_asset`` is routed to the cheapest healthy exchange."""
    route, route_fee = None, Decimal(0)
    if body.trade_asset is not None:
        # Asked before the transaction: no connection is held while the venues answer.
        venues = venues_for(request.app.state.services, settings)
        route, route_fee = await trade_route(
            venues,
            body.operation,
            body.trade_asset,
            body.denomination,
            body.amount,
            max_age=max_data_age(settings),
        )
    # Two statements (read the schedule, insert the quote), each committed on its own: no
    # BEGIN/COMMIT round trips, and nothing between them needs a transaction.
    issued = await db.autocommit(
        lambda s: schedule.request_quote(
            s,
            settings,
            user=caller.user,
            operation=body.operation,
            amount=body.amount,
            currency=body.denomination,
            method=body.method,
            route=route,
            route_fee=route_fee,
        )
    )
    FEE_QUOTES.labels(body.operation).inc()
    return QuoteOut.of(issued.quote, issued.scale)


@router.get("/fees/schedule", dependencies=[public()], summary="The fee schedule")
async def fee_schedule(db: DatabaseDep, response: Response) -> list[ScheduleRowOut]:
    """Every active component of the fee schedule (public: the marketing site shows it)."""
    response.headers["Cache-Control"] = _SCHEDULE_CACHE
    rows = await db.run(schedule.schedule)
    return [ScheduleRowOut.of(row) for row in rows]
