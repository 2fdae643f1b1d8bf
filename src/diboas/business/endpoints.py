"""/api/v1/business routes: organisations, members, the treasury and its funding. API keys and
the IP allow-list are in ``credential_endpoints``, payouts, exports and the audit log in
``payout_endpoints``; both are included in this module's router.

Every route under an organisation declares one ``Action`` (``access.org_access``): the least
role a member needs and the scope an API key needs (None: people only).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.balances import service as balances
from diboas.balances.schemas import BalancesOut
from diboas.banking.repository import Transaction
from diboas.business import schemas, treasury_defi
from diboas.business.access import (
    LEAVE,
    MANAGE,
    PERMISSION,
    READ_ORGANISATION,
    READ_TREASURY,
    OrgRole,
    Principal,
    client_address,
    org_access,
)
from diboas.business.credential_endpoints import router as credential_router
from diboas.business.endpoints_common import IdempotencyKey
from diboas.business.payout_endpoints import router as payout_router
from diboas.business.repository import Member, Organisation
from diboas.business.service import allowlist, organisations
from diboas.business.treasury_defi_endpoints import router as treasury_defi_router
from diboas.compliance import audit, limits
from diboas.identity.dependencies import CurrentCaller, requires
from diboas.kit.money import format_amount
from diboas.ledger.idempotency import IdempotencyPolicy, run_idempotent
from diboas.ledger.models import OwnerType
from diboas.market.endpoints import AsOfQuery, PricesDep
from diboas.market.schemas import parse_as_of

router = APIRouter(prefix="/business", tags=["business"])

Viewer = Annotated[Principal, org_access(READ_ORGANISATION)]
TreasuryReader = Annotated[Principal, org_access(READ_TREASURY)]
Admin = Annotated[Principal, org_access(MANAGE)]


def _organisation_out(organisation: Organisation, role: str | None) -> schemas.OrganisationOut:
    return schemas.OrganisationOut(
        id=organisation.id, name=organisation.name, created_at=organisation.created_at, role=role
    )


def _member_out(member: Member) -> schemas.MemberOut:
    return schemas.MemberOut(
        user_id=member.user_id,
        email=member.email,
        full_name=member.full_name,
        role=member.role,
        created_at=member.created_at,
    )


# --- organisations ------------------------------------------------------------------------------


@router.post(
    "/organisations",
    status_code=201,
    dependencies=[requires(PERMISSION)],
    summary="Create an organisation (you become its admin)",
)
async def create_organisation(
    body: schemas.OrganisationIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
) -> schemas.OrganisationOut:
    context = audit.request_context(request, caller.user)
    network = allowlist.creator_network(client_address(request, settings))
    organisation = await db.run(
        lambda s: organisations.create(
            s, name=body.name, creator_id=caller.id, creator_network=network, context=context
        )
    )
    return _organisation_out(organisation, OrgRole.ADMIN)


@router.get(
    "/organisations",
    dependencies=[requires(PERMISSION)],
    summary="The organisations you belong to, with your role in each",
)
async def list_organisations(
    caller: CurrentCaller, db: DatabaseDep
) -> list[schemas.OrganisationOut]:
    found = await db.run(lambda s: organisations.mine(s, caller.id))
    return [_organisation_out(m.organisation, m.role) for m in found]


@router.get("/organisations/{organisation_id}", summary="One organisation")
async def get_organisation(principal: Viewer) -> schemas.OrganisationOut:
    return _organisation_out(principal.organisation, principal.role)


# --- members -------------------------------------------------------------------------------------


@router.get("/organisations/{organisation_id}/members", summary="The organisation's members")
async def list_members(principal: Viewer, db: DatabaseDep) -> list[schemas.MemberOut]:
    found = await db.run(lambda s: organisations.members(s, principal.organisation_id))
    return [_member_out(m) for m in found]


@router.post(
    "/organisations/{organisation_id}/members",
    status_code=201,
    summary="Add an existing diBoaS user by email, with a role",
)
async def add_member(
    body: schemas.MemberIn, principal: Admin, request: Request, db: DatabaseDep
) -> schemas.MemberOut:
    context = principal.audit_context(request)
    member = await db.run(
        lambda s: organisations.add_member(
            s, principal, email=str(body.email), role=OrgRole(body.role), context=context
        )
    )
    return _member_out(member)


@router.patch(
    "/organisations/{organisation_id}/members/{user_id}",
    summary="Change a member's role (the last admin cannot be demoted)",
)
async def change_member_role(
    user_id: uuid.UUID,
    body: schemas.MemberRoleIn,
    principal: Admin,
    request: Request,
    db: DatabaseDep,
) -> schemas.MemberOut:
    context = principal.audit_context(request)
    member = await db.run(
        lambda s: organisations.change_role(
            s, principal, user_id=user_id, role=OrgRole(body.role), context=context
        )
    )
    return _member_out(member)


@router.delete(
    "/organisations/{organisation_id}/members/{user_id}",
    status_code=204,
    summary="Remove a member (never the last admin)",
)
async def remove_member(
    user_id: uuid.UUID, principal: Admin, request: Request, db: DatabaseDep
) -> Response:
    context = principal.audit_context(request)
    await db.run(
        lambda s: organisations.remove_member(s, principal, user_id=user_id, context=context)
    )
    return Response(status_code=204)


@router.post(
    "/organisations/{organisation_id}/leave",
    status_code=204,
    summary="Leave the organisation (not as its last admin)",
)
async def leave_organisation(
    principal: Annotated[Principal, org_access(LEAVE)], request: Request, db: DatabaseDep
) -> Response:
    context = principal.audit_context(request)
    if principal.user is None:  # LEAVE admits no API key; explicit for the type checker
        raise RuntimeError("leaving needs a signed-in member")
    user_id = principal.user.id
    await db.run(
        lambda s: organisations.remove_member(s, principal, user_id=user_id, context=context)
    )
    return Response(status_code=204)


# --- treasury ------------------------------------------------------------------------------------


@router.get(
    "/organisations/{organisation_id}/treasury",
    summary="The treasury's balances by domain and asset, valued in USD, and its DeFi now",
)
async def get_treasury(
    principal: TreasuryReader,
    request: Request,
    db: DatabaseDep,
    prices: PricesDep,
    response: Response,
    as_of: AsOfQuery = None,
) -> schemas.TreasuryOut:
    response.headers["Cache-Control"] = "no-store"
    at = parse_as_of(as_of)
    snap = await db.run(
        lambda s: balances.snapshot(
            s, owner_id=principal.organisation_id, at=at, owner_type=OwnerType.ORGANISATION
        )
    )
    sheet = BalancesOut.of(await balances.valued(prices, snap, at))
    # The positions valued at the vault now (the ledger's defi domain holds their booked value).
    defi = await treasury_defi.summary(db, request.app.state.services, principal)
    return schemas.TreasuryOut.model_validate({**sheet.model_dump(), "defi": defi})


def _funding_out(transaction: Transaction, organisation_id: uuid.UUID) -> dict[str, Any]:
    return schemas.FundingOut(
        id=transaction.id,
        status=transaction.status,
        amount=format_amount(transaction.amount, transaction.scale),
        currency=transaction.asset,
        fee=format_amount(transaction.fee, transaction.scale),
        organisation_id=organisation_id,
        created_at=transaction.created_at,
    ).model_dump(mode="json")


@router.post(
    "/organisations/{organisation_id}/treasury/fundings",
    status_code=201,
    response_model=schemas.FundingOut,
    summary="Move money from your own banking balance into the treasury",
)
async def fund_treasury(
    body: schemas.FundingIn,
    principal: Admin,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    context = principal.audit_context(request)
    admin = principal.user
    if admin is None:  # MANAGE admits no API key; explicit for the type checker
        raise RuntimeError("an admin route was reached without a user")

    async def accept(session: AsyncSession) -> tuple[int, Any]:
        funded = await organisations.fund(
            session, settings, principal, request=body, context=context
        )
        return 201, _funding_out(funded, principal.organisation_id)

    try:
        if idempotency_key is None:
            status_code, content = await db.run(accept)
            replayed = False
        else:
            stored = await run_idempotent(
                db.sessions,
                scope=f"user:{admin.id}",
                key=idempotency_key,
                request={"method": "POST", "path": request.url.path, "body": body.model_dump()},
                work=accept,
                policy=IdempotencyPolicy.from_settings(settings),
            )
            status_code, content, replayed = stored.status_code, stored.body, stored.replayed
    except limits.REFUSALS as refusal:
        await limits.record_refusal(
            db.sessions,
            context,
            user=admin,
            movement="transfer",
            amount_usd=Decimal(body.amount),  # parsed already: limits are checked after
            error=refusal,
        )
        raise
    if replayed and isinstance(content, dict) and isinstance(content.get("error"), dict):
        content = {"error": {**content["error"], "request_id": context.request_id}}
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(content, status_code=status_code, headers=headers)


router.include_router(credential_router)
router.include_router(payout_router)
router.include_router(treasury_defi_router)
