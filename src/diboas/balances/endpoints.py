"""/api/v1 routes of the balances package."""

from __future__ import annotations

from fastapi import APIRouter, Response

from diboas.api.deps import DatabaseDep
from diboas.balances import service
from diboas.balances.schemas import BalancesOut
from diboas.identity.dependencies import CurrentCaller, requires
from diboas.market.endpoints import AsOfQuery, PricesDep
from diboas.market.schemas import parse_as_of

router = APIRouter(tags=["balances"])


@router.get("/balances", dependencies=[requires("balances:read")], summary="The caller's balances")
async def get_balances(
    caller: CurrentCaller,
    db: DatabaseDep,
    prices: PricesDep,
    response: Response,
    as_of: AsOfQuery = None,
) -> BalancesOut:
    """Available and held per domain and asset, valued in USD, now or at ``as_of``."""
    # Balances are personal and change with every movement: no cache may keep them.
    response.headers["Cache-Control"] = "no-store"
    at = parse_as_of(as_of)
    snap = await db.run(lambda s: service.snapshot(s, owner_id=caller.id, at=at))
    return BalancesOut.of(await service.valued(prices, snap, at))
