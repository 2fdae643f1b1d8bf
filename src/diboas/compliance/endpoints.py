"""/api/v1 routes of the compliance package: KYC submissions, the caller's limits, and the
audit log for support and admins."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.compliance import audit, kyc, limits
from diboas.compliance.schemas import (
    AuditEntryOut,
    AuditLogPage,
    KycReviewIn,
    KycSubmissionIn,
    KycSubmissionOut,
    LimitOut,
    LimitsOut,
)
from diboas.identity.dependencies import CurrentCaller, requires
from diboas.providers.kyc import KycApplicant, KycProvider, kyc_provider
from diboas.settings import Settings

router = APIRouter(tags=["compliance"])

MAX_AUDIT_PAGE = 200


def _provider(request: Request, settings: Settings) -> KycProvider:
    # Tests and the providers issue hand in other implementations through app.state.services.
    chosen: KycProvider | None = request.app.state.services.get("kyc")
    return chosen or kyc_provider(settings)


def _submission_out(submission: kyc.Submission) -> KycSubmissionOut:
    return KycSubmissionOut.model_validate(submission, from_attributes=True)


@router.post(
    "/kyc/submissions",
    status_code=201,
    dependencies=[requires("kyc:submit")],
    summary="Submit identity details for verification",
)
async def submit_kyc(
    body: KycSubmissionIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
) -> KycSubmissionOut:
    await db.run(lambda s: kyc.ensure_can_submit(s, caller.id))
    provider = _provider(request, settings)
    applicant = KycApplicant(
        first_name=body.first_name,
        last_name=body.last_name,
        date_of_birth=body.date_of_birth,
        country=body.country,
        address=body.address,
        document_type=body.document_type,
        document_number=body.document_number,
    )
    decision = await provider.submit(applicant)
    submission = await db.run(
        lambda s: kyc.record_decision(
            s,
            user_id=caller.id,
            provider=provider.name,
            applicant=applicant,
            decision=decision,
            context=audit.request_context(request, caller.user),
        )
    )
    return _submission_out(submission)


@router.get(
    "/kyc/submissions", dependencies=[requires("kyc:submit")], summary="Your KYC submissions"
)
async def list_kyc_submissions(
    caller: CurrentCaller,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[KycSubmissionOut]:
    found = await db.run(lambda s: kyc.submissions_of(s, caller.id, limit=limit))
    return [_submission_out(x) for x in found]


@router.get("/limits", dependencies=[requires("banking:read")], summary="Your tier and limits")
async def my_limits(caller: CurrentCaller, db: DatabaseDep, settings: SettingsDep) -> LimitsOut:
    user = caller.user
    found = await db.run(lambda s: limits.status(s, settings, user))
    table: dict[str, dict[str, LimitOut]] = {}
    for x in found:
        table.setdefault(x.movement, {})[x.period] = LimitOut(
            limit=limits.usd_text(x.limit),
            used=limits.usd_text(x.used, up=True),
            remaining=limits.usd_text(x.remaining),
        )
    email_ok = not settings.email_verification_required or user.email_verified_at is not None
    return LimitsOut(
        tier=user.kyc_tier,
        kyc_status=user.kyc_status,
        can_move_money=bool(table) and email_ok,
        limits=table,
    )


@router.get(
    "/admin/audit-log", dependencies=[requires("audit:read")], summary="The audit log, newest first"
)
async def audit_log(
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    actor_id: uuid.UUID | None = None,
    action: Annotated[
        str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9_.]+$")
    ] = None,
    before_id: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 50,
) -> AuditLogPage:
    context = audit.request_context(request, caller.user)

    async def read(session: AsyncSession) -> list[audit.AuditEntry]:
        found = await audit.entries(
            session, actor_id=actor_id, action=action, before_id=before_id, limit=limit + 1
        )
        # Reading the audit log is itself on the record: who looked, for what. Written after
        # the read, so a page never shows the request that reads it.
        await audit.record(
            session,
            context,
            "audit_log.read",
            details={"actor_id": actor_id, "action": action, "before_id": before_id},
        )
        return found

    rows = await db.run(read)
    page = rows[:limit]
    return AuditLogPage(
        items=[AuditEntryOut.model_validate(x, from_attributes=True) for x in page],
        next_before_id=page[-1].id if len(rows) > limit else None,
    )


@router.get(
    "/admin/kyc/reviews",
    dependencies=[requires("kyc:review")],
    summary="KYC submissions waiting for a manual review",
)
async def pending_kyc_reviews(
    db: DatabaseDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[KycSubmissionOut]:
    found = await db.run(lambda s: kyc.pending_reviews(s, limit=limit))
    return [_submission_out(x) for x in found]


@router.post(
    "/admin/kyc/reviews/{submission_id}",
    dependencies=[requires("kyc:review")],
    summary="Decide a KYC submission left for manual review",
)
async def decide_kyc_review(
    submission_id: uuid.UUID,
    body: KycReviewIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
) -> KycSubmissionOut:
    context = audit.request_context(request, caller.user)
    decided = await db.run(
        lambda s: kyc.decide_review(
            s,
            submission_id=submission_id,
            approve=body.decision == "approve",
            reason=body.reason,
            context=context,
        )
    )
    return _submission_out(decided)
