"""/api/v1/business/organisations/{id}/treasury/defi routes: the organisation's risk profile,
investing treasury money into a strategy, its positions valued now, withdrawing back to the
treasury (``treasury_defi``). The strategy catalog is the global ``/api/v1/defi/strategies``.

Investing and withdrawing require an ``Idempotency-Key`` (scoped to the admin, as for the
other business money movements): a replay answers the first response.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from diboas.api.deps import DatabaseDep
from diboas.banking.schemas import TransactionOut
from diboas.business import treasury_defi
from diboas.business.access import INVEST_TREASURY, READ_TREASURY_DEFI, Principal, org_access
from diboas.business.endpoints_common import IdempotencyKey
from diboas.business.schemas import TreasuryInvestIn, TreasuryPositionsOut
from diboas.business.treasury_defi import IdempotencyKeyRequiredError, RiskProfile, Work
from diboas.defi import schemas as defi_schemas
from diboas.defi.errors import RiskNotAcknowledgedError

router = APIRouter()

Reader = Annotated[Principal, org_access(READ_TREASURY_DEFI)]
Investor = Annotated[Principal, org_access(INVEST_TREASURY)]
_BASE = "/organisations/{organisation_id}/treasury/defi"


def _risk_out(profile: RiskProfile) -> defi_schemas.RiskProfileOut:
    return defi_schemas.RiskProfileOut(max_risk_score=profile.max_risk_score, source=profile.source)


def _required(key: str | None) -> str:
    if key is None:
        raise IdempotencyKeyRequiredError(
            "send an Idempotency-Key header: moving treasury money must be safe to retry"
        )
    return key


async def _once(
    request: Request,
    db: DatabaseDep,
    principal: Principal,
    key: str,
    body: dict[str, Any] | None,
    work: Work,
) -> JSONResponse:
    stored = await treasury_defi.accept_once(
        db,
        principal,
        key=key,
        request={"method": request.method, "path": request.url.path, "body": body},
        work=work,
    )
    content = stored.body
    if stored.replayed and isinstance(content, dict) and isinstance(content.get("error"), dict):
        request_id = getattr(request.state, "request_id", None)
        content = {"error": {**content["error"], "request_id": request_id}}
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
    return JSONResponse(content, status_code=stored.status_code, headers=headers)


@router.get(f"{_BASE}/risk-profile", summary="The organisation's DeFi risk profile")
async def get_risk_profile(principal: Reader, db: DatabaseDep) -> defi_schemas.RiskProfileOut:
    return _risk_out(await treasury_defi.risk_profile(db, principal))


@router.put(
    f"{_BASE}/risk-profile",
    summary="Set the highest strategy risk score the treasury invests in without acknowledging",
)
async def set_risk_profile(
    body: defi_schemas.RiskProfileIn, principal: Investor, request: Request, db: DatabaseDep
) -> defi_schemas.RiskProfileOut:
    context = principal.audit_context(request)
    return _risk_out(
        await treasury_defi.set_risk_profile(db, principal, body.max_risk_score, context)
    )


@router.post(
    f"{_BASE}/positions",
    status_code=201,
    response_model=defi_schemas.MovementOut,
    summary="Invest treasury money into a strategy (Idempotency-Key required)",
)
async def invest(
    body: TreasuryInvestIn,
    principal: Investor,
    request: Request,
    db: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    key = _required(idempotency_key)
    context = principal.audit_context(request)
    services = request.app.state.services
    try:
        work = await treasury_defi.invest(db, services, principal, body, context)
        return await _once(request, db, principal, key, body.model_dump(mode="json"), work)
    except RiskNotAcknowledgedError as refusal:
        await treasury_defi.record_risk_refusal(db, principal, context, refusal)
        raise


@router.get(
    f"{_BASE}/positions",
    summary="The treasury's DeFi positions, valued at the vault's share price now",
)
async def list_positions(
    principal: Reader, request: Request, db: DatabaseDep, response: Response
) -> TreasuryPositionsOut:
    response.headers["Cache-Control"] = "no-store"
    return await treasury_defi.positions(db, request.app.state.services, principal)


@router.get(f"{_BASE}/positions/{{position_id}}", summary="One of the treasury's positions")
async def get_position(
    position_id: uuid.UUID,
    principal: Reader,
    request: Request,
    db: DatabaseDep,
    response: Response,
) -> defi_schemas.PositionOut:
    response.headers["Cache-Control"] = "no-store"
    return await treasury_defi.position(db, request.app.state.services, principal, position_id)


@router.get(
    f"{_BASE}/transactions/{{transaction_id}}",
    summary="One of the treasury's DeFi movements, with its saga's steps",
)
async def get_transaction(
    transaction_id: uuid.UUID, principal: Reader, db: DatabaseDep
) -> TransactionOut:
    return await treasury_defi.transaction(db, principal, transaction_id)


@router.post(
    f"{_BASE}/positions/{{position_id}}/withdraw",
    status_code=201,
    response_model=defi_schemas.MovementOut,
    summary="Withdraw part (amount in USD) or all (empty body) of a position to the treasury",
)
async def withdraw(
    position_id: uuid.UUID,
    principal: Investor,
    request: Request,
    db: DatabaseDep,
    body: defi_schemas.WithdrawIn | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    key = _required(idempotency_key)
    context = principal.audit_context(request)
    work = await treasury_defi.withdraw(
        db,
        request.app.state.services,
        principal,
        position_id,
        None if body is None else body.amount,
        context,
    )
    dumped = None if body is None else body.model_dump(mode="json")
    return await _once(request, db, principal, key, dumped, work)
