"""KYC submissions: who may submit, and recording a provider's decision.

A submission runs in three steps (see the endpoint): ``ensure_can_submit`` in a short
transaction, the provider's decision outside any transaction (a vendor call must not hold the
user's row lock, and a transaction retried on a serialization failure must not ask the vendor
twice), then ``record_decision`` in one transaction: it locks the user, checks again, stores
the submission, sets the user's tier and status, and writes the audit row — all or nothing.

Only the document number's last four characters are stored; names, birth date and address
stay with the provider.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.identity import repository as users
from diboas.identity.repository import User
from diboas.kit.errors import ConflictError, NotFoundError
from diboas.kit.ids import uuid7
from diboas.providers.kyc import KycApplicant, KycDecision

_COLUMNS = """id, user_id, provider, provider_reference, status, tier, reason, country,
    document_type, document_last4, created_at, decided_at"""


class KycAlreadyApprovedError(ConflictError):
    """The user's identity is verified already; there is nothing to submit."""

    code = "kyc_already_approved"


class KycReviewPendingError(ConflictError):
    """A submission is waiting for a manual review; another may not jump the queue."""

    code = "kyc_review_pending"


@dataclass(frozen=True, slots=True)
class Submission:
    """A stored KYC submission and its decision."""

    id: uuid.UUID
    user_id: uuid.UUID
    provider: str
    provider_reference: str | None
    status: str
    tier: int
    reason: str | None
    country: str
    document_type: str
    document_last4: str
    created_at: datetime
    decided_at: datetime | None


def _check(user: User) -> None:
    if user.kyc_status == "approved":
        raise KycAlreadyApprovedError(
            "your identity is verified already", details={"kyc_tier": user.kyc_tier}
        )
    if user.kyc_status == "pending_review":
        raise KycReviewPendingError("your previous submission is being reviewed")


async def ensure_can_submit(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Refuse (409) a user who is approved already or waiting for a review."""
    user = await users.get(session, user_id)
    if user is None:
        raise NotFoundError("no such user")
    _check(user)


async def record_decision(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    provider: str,
    applicant: KycApplicant,
    decision: KycDecision,
    context: AuditContext,
) -> Submission:
    """Store a submission with its decision, update the user's KYC tier and status, and audit
    ``kyc.decision`` — in the caller's transaction.

    The user's row is locked and checked again, so of two concurrent submissions only one
    can record an approval. A tier is only ever raised here, never lowered.
    """
    user = await users.get(session, user_id, lock=True)
    if user is None:
        raise NotFoundError("no such user")
    _check(user)
    submission = await _insert(session, user_id, provider, applicant, decision)
    await session.execute(
        text("""
            UPDATE users SET kyc_status = :status, kyc_tier = GREATEST(kyc_tier, :tier),
                             updated_at = now()
             WHERE id = :id
        """),
        {"id": user_id, "status": decision.status, "tier": decision.tier},
    )
    await audit.record(
        session,
        context,
        "kyc.decision",
        outcome="refused" if decision.status == "rejected" else "success",
        subject_type="kyc_submission",
        subject_id=submission.id,
        details={
            "user_id": str(user_id),
            "status": decision.status,
            "tier": decision.tier,
            "reason": decision.reason,
            "provider": provider,
            "provider_reference": decision.provider_reference,
            "country": applicant.country,
            "document_type": applicant.document_type,
        },
    )
    return submission


async def _insert(
    session: AsyncSession,
    user_id: uuid.UUID,
    provider: str,
    applicant: KycApplicant,
    decision: KycDecision,
) -> Submission:
    row = (
        await session.execute(
            text(f"""
                INSERT INTO kyc_submissions (id, user_id, provider, provider_reference, status,
                                             tier, reason, country, document_type,
                                             document_last4, decided_at)
                VALUES (:id, :user_id, :provider, :reference, :status, :tier, :reason, :country,
                        :document_type, :last4,
                        CASE WHEN CAST(:decided AS boolean) THEN now() END)
                RETURNING {_COLUMNS}
            """),
            {
                "id": uuid7(),
                "user_id": user_id,
                "provider": provider,
                "reference": decision.provider_reference,
                "status": decision.status,
                "tier": decision.tier,
                "reason": decision.reason,
                "country": applicant.country,
                "document_type": applicant.document_type,
                "last4": applicant.document_number[-4:].upper(),
                # A submission left for review has no decision yet.
                "decided": decision.status != "pending_review",
            },
        )
    ).one()
    return Submission(**row._mapping)


async def submissions_of(
    session: AsyncSession, user_id: uuid.UUID, *, limit: int
) -> list[Submission]:
    """The user's own submissions, newest first."""
    rows = await session.execute(
        text(f"""
            SELECT {_COLUMNS} FROM kyc_submissions WHERE user_id = :user_id
             ORDER BY created_at DESC, id DESC LIMIT :limit
        """),
        {"user_id": user_id, "limit": limit},
    )
    return [Submission(**r._mapping) for r in rows]


async def pending_reviews(session: AsyncSession, *, limit: int) -> list[Submission]:
    """Submissions waiting for a reviewer, oldest first."""
    rows = await session.execute(
        text(f"""
            SELECT {_COLUMNS} FROM kyc_submissions WHERE status = 'pending_review'
             ORDER BY created_at, id LIMIT :limit
        """),
        {"limit": limit},
    )
    return [Submission(**r._mapping) for r in rows]


async def decide_review(
    session: AsyncSession,
    *,
    submission_id: uuid.UUID,
    approve: bool,
    reason: str | None,
    context: AuditContext,
) -> Submission:
    """A reviewer's decision on a submission the provider left for manual review: approval
    grants tier 1, rejection leaves tier 0; audited as ``kyc.review_decision``."""
    row = (
        await session.execute(
            text(f"""
                UPDATE kyc_submissions
                   SET status = :status, tier = :tier, reason = :reason, decided_at = now()
                 WHERE id = :id AND status = 'pending_review'
             RETURNING {_COLUMNS}
            """),
            {
                "id": submission_id,
                "status": "approved" if approve else "rejected",
                "tier": 1 if approve else 0,
                "reason": reason,
            },
        )
    ).one_or_none()
    if row is None:
        raise NotFoundError("no submission waiting for review with this id")
    submission = Submission(**row._mapping)
    await users.get(session, submission.user_id, lock=True)
    await session.execute(
        text("""
            UPDATE users SET kyc_status = :status, kyc_tier = GREATEST(kyc_tier, :tier),
                             updated_at = now()
             WHERE id = :id AND kyc_status = 'pending_review'
        """),
        {"id": submission.user_id, "status": submission.status, "tier": submission.tier},
    )
    await audit.record(
        session,
        context,
        "kyc.review_decision",
        outcome="success" if approve else "refused",
        subject_type="kyc_submission",
        subject_id=submission.id,
        details={"user_id": str(submission.user_id), "status": submission.status, "reason": reason},
    )
    return submission
