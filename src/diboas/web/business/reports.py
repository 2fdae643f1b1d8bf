"""Exports (the treasury's movements and the audit log as CSV) and the audit log's page —
the same CSV as the API's, audited the same way."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from diboas.business.access import READ_AUDIT, READ_TRANSACTIONS
from diboas.business.service import exports
from diboas.compliance import audit
from diboas.web.business.common import OrgRoutes, principal_of, render
from diboas.web.routing import Page

org_routes = OrgRoutes()
AUDIT_PAGE = 50


def _csv(content: str, filename: str) -> Response:
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@org_routes.add("/exports", READ_TRANSACTIONS)
async def exports_page(page: Page) -> Response:
    return render(page, "business/exports.html")


@org_routes.add("/exports/movements.csv", READ_TRANSACTIONS)
async def movements_csv(page: Page) -> Response:
    principal = principal_of(page)
    context = principal.audit_context(page.request)

    async def export(session: AsyncSession) -> str:
        content = await exports.movements_csv(
            session, page.settings, principal.organisation_id, since=None, until=None
        )
        await audit.record(
            session,
            context,
            "business.export_downloaded",
            subject_type="organisation",
            subject_id=principal.organisation_id,
            details={"export": "movements"},
        )
        return content

    content = await page.db.run(export)
    return _csv(content, f"diboas-{principal.organisation_id}-movements.csv")


@org_routes.add("/exports/audit-log.csv", READ_AUDIT)
async def audit_csv(page: Page) -> Response:
    principal = principal_of(page)
    content = await page.db.run(
        lambda s: exports.audit_csv(s, page.settings, principal.organisation_id)
    )
    return _csv(content, f"diboas-{principal.organisation_id}-audit-log.csv")


@org_routes.add("/audit", READ_AUDIT)
async def audit_log(page: Page) -> Response:
    organisation_id = principal_of(page).organisation_id
    before = page.request.query_params.get("before", "")
    before_id = int(before) if before.isdigit() and int(before) > 0 else None
    found = await page.db.run(
        lambda s: exports.audit_page(s, organisation_id, limit=AUDIT_PAGE, before_id=before_id)
    )
    return render(
        page,
        "business/audit.html",
        {"entries": found, "next_before": found[-1].id if len(found) == AUDIT_PAGE else None},
    )
