"""Bulk payouts: upload a CSV (one bounded file, the API's limits), see the report of every
row before anything moves, execute a valid batch — once: executing it again pays nothing."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from diboas.business import uploads
from diboas.business.access import READ_PAYOUTS, WRITE_PAYOUTS
from diboas.business.service import payout_execution, payouts
from diboas.kit.errors import DomainError
from diboas.web.business.common import (
    OrgRoutes,
    not_found,
    org_url,
    path_uuid,
    principal_of,
    render,
)
from diboas.web.consumer.movements import new_form_key, once
from diboas.web.forms import FormErrors
from diboas.web.routing import Page

org_routes = OrgRoutes()


@org_routes.add("/payouts", READ_PAYOUTS)
async def batches(page: Page) -> Response:
    return await _batches_page(page, FormErrors())


@org_routes.add("/payouts", WRITE_PAYOUTS, methods=("POST",), form_reader=uploads.receive_form)
async def upload(page: Page) -> Response:
    principal = principal_of(page)
    errors = FormErrors()
    try:
        batch_id, earlier = await _upload(page)
    except DomainError as refusal:
        errors.add_domain_error(refusal)
        return await _batches_page(page, errors)
    # The very same file made an earlier batch: uploaded twice by mistake? The report says so.
    tail = "" if earlier is None else f"?duplicate_of={earlier}"
    return page.redirect(org_url(principal, f"/payouts/{batch_id}{tail}"))


async def _upload(page: Page) -> tuple[uuid.UUID, uuid.UUID | None]:
    # The form was received by uploads.receive_form (bounded, after the role and address
    # check); the batch is made once per form, as the API's upload is once per key.
    principal = principal_of(page)
    if page.form is None:
        raise RuntimeError("an upload route without its form")
    file = await uploads.payout_file(page.form)
    context = principal.audit_context(page.request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        validated = await payouts.upload(
            session,
            page.settings,
            principal,
            content=file.content,
            filename=file.filename,
            context=context,
        )
        earlier = validated.duplicate_of
        return {"id": str(validated.batch.id), "duplicate_of": earlier and str(earlier)}

    request = {
        "business": "payout_upload",
        "organisation_id": str(principal.organisation_id),
        "file_sha256": hashlib.sha256(file.content).hexdigest(),
        "filename": file.filename,
    }
    stored, _ = await once(page, principal.idempotency_scope, request, work)
    earlier = stored.get("duplicate_of")
    return uuid.UUID(str(stored["id"])), None if earlier is None else uuid.UUID(str(earlier))


@org_routes.add("/payouts/{batch_id}", READ_PAYOUTS)
async def batch(page: Page) -> Response:
    return await _batch_page(page, FormErrors())


@org_routes.add("/payouts/{batch_id}/execute", WRITE_PAYOUTS, methods=("POST",))
async def execute(page: Page) -> Response:
    principal = principal_of(page)
    batch_id = path_uuid(page, "batch_id")
    if batch_id is None:
        return not_found(page)
    context = principal.audit_context(page.request)
    try:
        paid = await payout_execution.execute(
            page.db, principal, batch_id=batch_id, context=context
        )
    except DomainError as refusal:
        errors = FormErrors()
        errors.add_domain_error(refusal)
        return await _batch_page(page, errors)
    # Executed before (another tab, a resent form): nothing moved now, and the page says so.
    done = f"paid&rows={paid}" if paid else "already"
    return page.redirect(org_url(principal, f"/payouts/{batch_id}?done={done}"))


def _query_uuid(page: Page, name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(page.request.query_params.get(name, ""))
    except ValueError:
        return None


async def _batches_page(page: Page, errors: FormErrors) -> Response:
    organisation_id = principal_of(page).organisation_id
    found = await page.db.run(lambda s: payouts.recent(s, organisation_id))
    return render(
        page,
        "business/payouts.html",
        {
            "batches": found,
            "errors": errors,
            "form_key": new_form_key(),
            "max_rows": page.settings.business_payout_max_rows,
            "max_kib": page.settings.business_payout_max_bytes // 1024,
        },
        status=errors.status_code if errors else 200,
    )


async def _batch_page(page: Page, errors: FormErrors) -> Response:
    organisation_id = principal_of(page).organisation_id
    batch_id = path_uuid(page, "batch_id")
    if batch_id is None:
        return not_found(page)
    try:
        found, rows = await page.db.run(lambda s: payouts.get(s, organisation_id, batch_id))
    except DomainError:
        return render(
            page,
            "business/refused.html",
            {"title": "Batch not found", "message": "There is no such payout batch here."},
            status=404,
        )
    return render(
        page,
        "business/batch.html",
        {
            "batch": found,
            "rows": rows,
            "errors": errors,
            "notice": page.request.query_params.get("done", ""),
            "paid_rows": page.request.query_params.get("rows", ""),
            "duplicate_of": _query_uuid(page, "duplicate_of"),
        },
        status=errors.status_code if errors else 200,
    )
