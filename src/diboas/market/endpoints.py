"""/api/v1 routes of the market package."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from diboas.identity.dependencies import requires
from diboas.market.prices import PriceService, service_for
from diboas.market.schemas import AS_OF_MAX_LENGTH, PriceOut, parse_as_of, usd_text

router = APIRouter(tags=["market"])


async def get_prices(request: Request) -> PriceService:
    """The app's price service (the sandbox feed unless the app was handed another)."""
    # async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread.
    return service_for(request.app.state.services, request.app.state.settings)


PricesDep = Annotated[PriceService, Depends(get_prices)]
AsOfQuery = Annotated[
    str | None,
    Query(
        max_length=AS_OF_MAX_LENGTH,
        description="An ISO 8601 instant with a time zone, not in the future (default: now)",
    ),
]


@router.get("/market/prices", dependencies=[requires("market:read")], summary="Prices in USD")
async def list_prices(prices: PricesDep, as_of: AsOfQuery = None) -> list[PriceOut]:
    """Every asset's USD price now (a snapshot at most a few seconds old) or at ``as_of``."""
    at = parse_as_of(as_of)
    return [
        PriceOut(
            asset=p.asset,
            price_usd=usd_text(p.price_usd),
            as_of=p.as_of,
            priced_at=p.priced_at,
            stale=p.stale,
        )
        for p in await prices.prices(at)
    ]
