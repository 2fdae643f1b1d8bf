"""Operators' DeFi routes (``admin:ledger``): does the platform agree with the vaults, and
settling by hand what it could not (``service.resolution``)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.compliance import audit
from diboas.defi import schemas
from diboas.defi.service import reconciliation, resolution
from diboas.identity.dependencies import CurrentCaller, requires
from diboas.kit.money import parse_amount

router = APIRouter(tags=["defi"])
OPERATE = "admin:ledger"


@router.get(
    "/admin/defi/reconciliation",
    dependencies=[requires(OPERATE)],
    summary="The omnibus wallet's vault shares against the positions, and what needs an operator",
)
async def reconcile(
    request: Request, db: DatabaseDep, settings: SettingsDep
) -> schemas.ReconciliationOut:
    report = await reconciliation.check(db.sessions, request.app.state.services, settings)
    return schemas.ReconciliationOut(
        ok=report.ok,
        vaults=[
            schemas.VaultCheckOut(
                vault=v.vault,
                omnibus_shares=str(v.omnibus_shares),
                position_shares=str(v.position_shares),
                platform_shares=str(v.platform_shares),
                difference=str(v.difference),
            )
            for v in report.vaults
        ],
        unfinished_batches=report.unfinished["batches"],
        ambiguous_withdrawals=report.unfinished["withdrawals"],
        booked_usdc=str(report.booked_usdc),
        ledger_usdc=str(report.ledger_usdc),
    )


@router.post(
    "/admin/defi/batches/{batch_id}/resolve",
    dependencies=[requires(OPERATE)],
    summary="Settle or compensate a batch whose vault deposit the platform could not confirm",
)
async def resolve_batch(
    batch_id: uuid.UUID,
    body: schemas.ResolveBatchIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
) -> schemas.ResolvedOut:
    context = audit.request_context(request, caller.user)
    shares = None if body.shares is None else parse_amount(body.shares, 6, field="shares")
    outcome = await db.run(
        lambda s: resolution.resolve_batch(
            s, batch_id, deposited=body.outcome == "deposited", shares=shares, context=context
        )
    )
    return schemas.ResolvedOut(outcome=outcome)


@router.post(
    "/admin/defi/withdrawals/{transaction_id}/resolve",
    dependencies=[requires(OPERATE)],
    summary="Settle or compensate a withdrawal whose redemption the platform could not confirm",
)
async def resolve_withdrawal(
    transaction_id: uuid.UUID,
    body: schemas.ResolveWithdrawalIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
) -> schemas.ResolvedOut:
    context = audit.request_context(request, caller.user)
    assets = None if body.assets is None else parse_amount(body.assets, 6, field="assets")
    outcome = await db.run(
        lambda s: resolution.resolve_withdrawal(
            s, transaction_id, redeemed=body.outcome == "redeemed", assets=assets, context=context
        )
    )
    return schemas.ResolvedOut(outcome=outcome)
