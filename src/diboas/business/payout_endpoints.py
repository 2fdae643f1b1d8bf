"""/api/v1/business routes for payouts, CSV exports and the organisation's audit log.

A payout file is uploaded (multipart, field ``file``) and answered with its validation report
(201, nothing moved); ``POST …/payouts/{id}/execute`` pays a ``validated`` batch — once: a
repeated execution answers 200 with ``Idempotent-Replayed: true`` and moves nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.business import schemas, uploads
from diboas.business.access import (
    READ_AUDIT,
    READ_PAYOUTS,
    READ_TRANSACTIONS,
    WRITE_PAYOUTS,
    Principal,
    org_access,
)
from diboas.business.endpoints_common import IdempotencyKey
from diboas.business.payouts_repository import PayoutBatch, PayoutRow
from diboas.business.service import exports, payout_execution, payouts
from diboas.compliance import audit
from diboas.kit.money import format_amount
from diboas.ledger.idempotency import IdempotencyPolicy, run_idempotent

router = APIRouter()

PayoutReader = Annotated[Principal, org_access(READ_PAYOUTS)]
PayoutWriter = Annotated[Principal, org_access(WRITE_PAYOUTS)]
TransactionReader = Annotated[Principal, org_access(READ_TRANSACTIONS)]
AuditReader = Annotated[Principal, org_access(READ_AUDIT)]
_SCALE = 2


def _row_out(row: PayoutRow) -> schemas.PayoutRowOut:
    return schemas.PayoutRowOut(
        line=row.line,
        recipient_email=row.recipient_email,
        amount=row.amount_text if row.amount is None else format_amount(row.amount, _SCALE),
        currency=row.currency,
        note=row.note,
        status=row.status,
        error_code=row.error_code,
        error_message=row.error_message,
        transaction_id=row.transaction_id,
    )


def _batch_out(
    batch: PayoutBatch,
    rows: list[PayoutRow] | None = None,
    available: Decimal | None = None,
) -> schemas.PayoutBatchOut:
    return schemas.PayoutBatchOut(
        id=batch.id,
        status=batch.status,
        currency=batch.currency,
        total=format_amount(batch.total, _SCALE),
        row_count=batch.row_count,
        invalid_count=batch.invalid_count,
        treasury_available=None if available is None else format_amount(available, _SCALE),
        filename=batch.filename,
        created_at=batch.created_at,
        executed_at=batch.executed_at,
        rows=None if rows is None else [_row_out(r) for r in rows],
    )


@router.post(
    "/organisations/{organisation_id}/payouts",
    status_code=201,
    response_model=schemas.PayoutBatchOut,
    summary="Upload a payout CSV: answered with its validation report, nothing moves",
    openapi_extra=uploads.OPENAPI_BODY,
)
async def upload_payouts(
    principal: PayoutWriter,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    # Read only now, after the access check, and never past the limit (uploads says why).
    upload = await uploads.read_payout_file(request, settings)
    content, filename = upload.content, upload.filename
    context = principal.audit_context(request)

    async def accept(session: AsyncSession) -> tuple[int, Any]:
        validated = await payouts.upload(
            session, settings, principal, content=content, filename=filename, context=context
        )
        out = _batch_out(validated.batch, validated.rows, validated.treasury_available)
        out.duplicate_of = validated.duplicate_of
        return 201, out.model_dump(mode="json")

    if idempotency_key is None:
        status_code, body = await db.run(accept)
        replayed = False
    else:
        # A resent upload (a double click, a retried request) makes one batch, not two.
        stored = await run_idempotent(
            db.sessions,
            scope=principal.idempotency_scope,
            key=idempotency_key,
            request={
                "method": "POST",
                "path": request.url.path,
                "file_sha256": hashlib.sha256(content).hexdigest(),
                "filename": filename,
            },
            work=accept,
            policy=IdempotencyPolicy.from_settings(settings),
        )
        status_code, body, replayed = stored.status_code, stored.body, stored.replayed
    if replayed and isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = {"error": {**body["error"], "request_id": context.request_id}}
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(body, status_code=status_code, headers=headers)


@router.get("/organisations/{organisation_id}/payouts", summary="Recent payout batches")
async def list_payouts(principal: PayoutReader, db: DatabaseDep) -> list[schemas.PayoutBatchOut]:
    found = await db.run(lambda s: payouts.recent(s, principal.organisation_id))
    return [_batch_out(b) for b in found]


@router.get(
    "/organisations/{organisation_id}/payouts/{batch_id}",
    summary="A payout batch with every row's status",
)
async def get_payouts(
    batch_id: uuid.UUID, principal: PayoutReader, db: DatabaseDep
) -> schemas.PayoutBatchOut:
    batch, rows = await db.run(lambda s: payouts.get(s, principal.organisation_id, batch_id))
    return _batch_out(batch, rows)


@router.post(
    "/organisations/{organisation_id}/payouts/{batch_id}/execute",
    response_model=schemas.PayoutBatchOut,
    summary="Pay a validated batch (once: a repeat moves nothing; a stopped one resumes)",
)
async def execute_payouts(
    batch_id: uuid.UUID, principal: PayoutWriter, request: Request, db: DatabaseDep
) -> Response:
    context = principal.audit_context(request)
    paid = await payout_execution.execute(db, principal, batch_id=batch_id, context=context)
    replayed = paid == 0  # completed before this request: nothing moved now
    batch, rows = await db.run(lambda s: payouts.get(s, principal.organisation_id, batch_id))
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    body = _batch_out(batch, rows).model_dump(mode="json")
    return JSONResponse(body, status_code=200, headers=headers)


# --- exports and the audit log ---------------------------------------------------------------


def _csv(content: str, filename: str) -> Response:
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/organisations/{organisation_id}/movements",
    summary="The treasury's movements, newest first",
)
async def list_movements(
    principal: TransactionReader,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
) -> schemas.MovementPageOut:
    page = await db.run(
        lambda s: exports.movements_page(s, principal.organisation_id, cursor=cursor, limit=limit)
    )
    return schemas.MovementPageOut(
        items=[
            schemas.MovementOut(
                created_at=m.created_at,
                entry_id=m.entry_id,
                type=m.kind,
                direction="credit" if m.amount > 0 else "debit",
                amount=format_amount(abs(m.amount), m.scale),
                currency=m.asset,
                balance_after=format_amount(m.balance_after, m.scale),
                counterparty_email=m.counterparty_email,
                note=m.note,
                reference=m.reference,
            )
            for m in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.get(
    "/organisations/{organisation_id}/exports/movements.csv",
    summary="The treasury's ledger movements as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_movements(
    principal: TransactionReader,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    since: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601, exclusive")] = None,
) -> Response:
    context = principal.audit_context(request)

    async def export(session: AsyncSession) -> str:
        content = await exports.movements_csv(
            session,
            settings,
            principal.organisation_id,
            since=since,
            until=until,
        )
        await audit.record(
            session,
            context,
            "business.export_downloaded",
            subject_type="organisation",
            subject_id=principal.organisation_id,
            details={"export": "movements", **principal.actor_details()},
        )
        return content

    content = await db.run(export)
    return _csv(content, f"diboas-{principal.organisation_id}-movements.csv")


@router.get(
    "/organisations/{organisation_id}/audit-log",
    summary="The organisation's audit log, newest first",
)
async def get_audit_log(
    principal: AuditReader,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> schemas.AuditPageOut:
    found = await db.run(
        lambda s: exports.audit_page(s, principal.organisation_id, limit=limit, before_id=before)
    )
    items = [schemas.AuditEntryOut(**asdict(r)) for r in found]
    return schemas.AuditPageOut(
        items=items, next_before=found[-1].id if len(found) == limit else None
    )


@router.get(
    "/organisations/{organisation_id}/exports/audit-log.csv",
    summary="The organisation's audit log as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_audit_log(
    principal: AuditReader, db: DatabaseDep, settings: SettingsDep
) -> Response:
    content = await db.run(lambda s: exports.audit_csv(s, settings, principal.organisation_id))
    return _csv(content, f"diboas-{principal.organisation_id}-audit-log.csv")
