"""/api/v1 routes of the DeFi package: the strategy catalog, the risk profile, investing,
positions and withdrawals.

Investing and withdrawing take an optional ``Idempotency-Key`` like banking's movements: the
first answer (success or refusal) is stored with its effect and replayed for the same key and
body. Gas is estimated (``VaultProtocol.estimate_gas``) and priced in USD before the
movement's transaction, and shown as the ``network`` part of the fee.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.compliance import audit
from diboas.defi import repository, schemas, steps, views
from diboas.defi import tasks as _tasks  # noqa: F401 - registers the jobs movements stage
from diboas.defi.admin_endpoints import router as admin_router
from diboas.defi.errors import (
    RiskNotAcknowledgedError,
    StrategyNotFoundError,
)
from diboas.defi.owners import Owner
from diboas.defi.repository import Position, Strategy
from diboas.defi.service import catalog, movements
from diboas.identity.dependencies import CurrentCaller, requires
from diboas.kit.money import format_amount
from diboas.ledger.idempotency import IdempotencyPolicy, run_idempotent

router = APIRouter(tags=["defi"])

READ = "defi:read"
INVEST = "defi:invest"
_CENT = Decimal("0.01")

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes a retry safe: the same key and body give the first answer again.",
    ),
]


def _usd(value: Decimal) -> str:
    return format_amount(value, 2)


async def _idempotent(
    request: Request,
    db: DatabaseDep,
    caller_id: uuid.UUID,
    key: str | None,
    body: dict[str, Any] | None,
    work: Any,
) -> JSONResponse:
    if key is None:
        status_code, content = await db.run(work)
        replayed = False
    else:
        stored = await run_idempotent(
            db.sessions,
            scope=f"user:{caller_id}",
            key=key,
            request={"method": request.method, "path": request.url.path, "body": body},
            work=work,
            policy=IdempotencyPolicy.from_settings(db.settings),
        )
        status_code, content, replayed = stored.status_code, stored.body, stored.replayed
    if replayed and isinstance(content, dict) and isinstance(content.get("error"), dict):
        request_id = getattr(request.state, "request_id", None)
        content = {"error": {**content["error"], "request_id": request_id}}
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(content, status_code=status_code, headers=headers)


@router.get("/defi/strategies", dependencies=[requires(READ)], summary="The strategy catalog")
async def list_strategies(request: Request, db: DatabaseDep) -> list[schemas.StrategyOut]:
    found = await steps.catalog_views(db, request.app.state.services)
    return [
        schemas.StrategyOut(
            id=v.strategy.id,
            name=v.strategy.name,
            description=v.strategy.description,
            protocol=v.strategy.protocol,
            asset=v.strategy.asset,
            apy=str(v.apy),
            apy_source=v.apy_source,
            share_price=None if v.share_price is None else str(v.share_price),
            risk_score=v.strategy.risk_score,
            lockup_days=v.strategy.lockup_days,
            min_amount=_usd(v.strategy.min_amount),
            currency="USD",
            available=v.available,
        )
        for v in found
    ]


@router.get("/defi/risk-profile", dependencies=[requires(READ)], summary="Your DeFi risk profile")
async def get_risk_profile(caller: CurrentCaller, db: DatabaseDep) -> schemas.RiskProfileOut:
    found = await db.run(lambda s: repository.get_risk_profile(s, Owner.user(caller.id)))
    if found is None:
        return schemas.RiskProfileOut(max_risk_score=catalog.DEFAULT_MAX_RISK, source="default")
    return schemas.RiskProfileOut(max_risk_score=found, source="set")


@router.put(
    "/defi/risk-profile",
    dependencies=[requires(INVEST)],
    summary="Set the highest strategy risk score you accept",
)
async def set_risk_profile(
    body: schemas.RiskProfileIn, caller: CurrentCaller, request: Request, db: DatabaseDep
) -> schemas.RiskProfileOut:
    context = audit.request_context(request, caller.user)

    async def write(session: AsyncSession) -> None:
        await repository.set_risk_profile(session, Owner.user(caller.id), body.max_risk_score)
        await audit.record(
            session,
            context,
            "defi.risk_profile",
            subject_type="user",
            subject_id=caller.id,
            details={"max_risk_score": body.max_risk_score},
        )

    await db.run(write)
    return schemas.RiskProfileOut(max_risk_score=body.max_risk_score, source="set")


@router.post(
    "/defi/positions",
    status_code=201,
    response_model=schemas.MovementOut,
    dependencies=[requires(INVEST)],
    summary="Invest USD from Banking into a strategy",
)
async def invest(
    body: schemas.InvestIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    context = audit.request_context(request, caller.user)
    work = await steps.invest(
        db, request.app.state.services, user_id=caller.id, body=body, context=context
    )

    async def accept(session: AsyncSession) -> tuple[int, Any]:
        return 201, views.movement_out(await work(session)).model_dump(mode="json")

    try:
        return await _idempotent(
            request, db, caller.id, idempotency_key, body.model_dump(mode="json"), accept
        )
    except RiskNotAcknowledgedError as refusal:
        await audit.record_separately(
            db.sessions,
            context,
            "defi.risk_refused",
            outcome="failure",
            subject_type="user",
            subject_id=caller.id,
            details=refusal.details,
        )
        raise


@router.post(
    "/defi/positions/{position_id}/withdraw",
    status_code=201,
    response_model=schemas.MovementOut,
    dependencies=[requires(INVEST)],
    summary="Withdraw part (amount in USD) or all (empty body) of a position to Banking",
)
async def withdraw(
    position_id: uuid.UUID,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    body: schemas.WithdrawIn | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    context = audit.request_context(request, caller.user)
    work = await steps.withdraw(
        db,
        request.app.state.services,
        user_id=caller.id,
        position_id=position_id,
        amount=None if body is None else body.amount,
        context=context,
    )

    async def accept(session: AsyncSession) -> tuple[int, Any]:
        return 201, views.movement_out(await work(session)).model_dump(mode="json")

    dumped = None if body is None else body.model_dump(mode="json")
    return await _idempotent(request, db, caller.id, idempotency_key, dumped, accept)


async def _read_positions(
    db: DatabaseDep, user_id: uuid.UUID, position_id: uuid.UUID | None
) -> tuple[list[Position], dict[str, Strategy]]:
    async def read(session: AsyncSession) -> tuple[list[Position], dict[str, Strategy]]:
        if position_id is None:
            positions = await repository.list_positions(session, user_id)
        else:
            positions = [await movements.own_position(session, position_id, Owner.user(user_id))]
        strategies = {}
        for strategy_id in {p.strategy_id for p in positions}:
            found = await repository.get_strategy(session, strategy_id)
            if found is None:
                raise StrategyNotFoundError(
                    "no such strategy", details={"strategy_id": strategy_id}
                )
            strategies[strategy_id] = found
        return positions, strategies

    return await db.run(read)


@router.get(
    "/defi/positions",
    dependencies=[requires(READ)],
    summary="Your positions, valued at the vault's share price now",
)
async def list_positions(
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    response: Response,
) -> schemas.PositionsOut:
    response.headers["Cache-Control"] = "no-store"
    positions, strategies = await _read_positions(db, caller.id, None)
    return await views.positions_out(request.app.state.services, settings, positions, strategies)


@router.get(
    "/defi/positions/{position_id}", dependencies=[requires(READ)], summary="One of your positions"
)
async def get_position(
    position_id: uuid.UUID,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    response: Response,
) -> schemas.PositionOut:
    response.headers["Cache-Control"] = "no-store"
    positions, strategies = await _read_positions(db, caller.id, position_id)
    return (
        await views.positions_out(request.app.state.services, settings, positions, strategies)
    ).items[0]


# Operators' routes (reconciliation, resolving what the platform could not settle).
router.include_router(admin_router)
