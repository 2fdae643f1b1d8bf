"""The treasury's DeFi yield in the business app: the organisation's positions valued at the
vault's share price now, with their yield; its admins invest treasury money into a strategy
and withdraw it back.

The same functions as the API's treasury DeFi routes (``business.treasury_defi``), under the
same Actions: ``READ_TREASURY_DEFI`` to see, ``INVEST_TREASURY`` (admins in person) to move
money. Each form carries a key from when it was rendered, so a form sent twice moves money once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from diboas.business import treasury_defi
from diboas.business.access import INVEST_TREASURY, READ_TREASURY_DEFI, OrgRole, role_allows
from diboas.business.schemas import TreasuryInvestIn
from diboas.defi import views
from diboas.defi.errors import RiskNotAcknowledgedError
from diboas.kit.errors import DomainError
from diboas.web.business.common import OrgRoutes, org_url, path_uuid, principal_of, render
from diboas.web.consumer.movements import new_form_key, once
from diboas.web.forms import FormErrors, validate
from diboas.web.routing import Page

org_routes = OrgRoutes()
_BLANK = {"strategy_id": "", "amount": "", "acknowledge_risk": ""}


@org_routes.add("/yield", READ_TREASURY_DEFI)
async def yield_page(page: Page) -> Response:
    return await _page(page, dict(_BLANK), FormErrors())


@org_routes.add("/yield/positions", INVEST_TREASURY, methods=("POST",))
async def invest(page: Page) -> Response:
    values = {name: page.field(name) for name in _BLANK}
    body, errors = validate(
        TreasuryInvestIn, {**values, "acknowledge_risk": values["acknowledge_risk"] == "yes"}
    )
    if body is not None:
        principal = principal_of(page)
        context = principal.audit_context(page.request)
        services = page.request.app.state.services
        try:
            work = await treasury_defi.invest(page.db, services, principal, body, context)
            await _once(page, {"invest": body.model_dump(mode="json")}, work)
        except RiskNotAcknowledgedError as refusal:
            await treasury_defi.record_risk_refusal(page.db, principal, context, refusal)
            errors.add_domain_error(refusal)
        except DomainError as refusal:
            errors.add_domain_error(refusal)
        else:
            return page.redirect(org_url(principal, "/yield?done=invested"))
    return await _page(page, values, errors)


@org_routes.add("/yield/positions/{position_id}/withdraw", INVEST_TREASURY, methods=("POST",))
async def withdraw(page: Page) -> Response:
    principal = principal_of(page)
    position_id = path_uuid(page, "position_id")
    if position_id is None:
        return page.redirect(org_url(principal, "/yield"))
    errors = FormErrors()
    try:
        work = await treasury_defi.withdraw(
            page.db,
            page.request.app.state.services,
            principal,
            position_id,
            None,  # the whole position
            principal.audit_context(page.request),
        )
        await _once(page, {"withdraw": str(position_id)}, work)
    except DomainError as refusal:
        errors.add_domain_error(refusal)
        return await _page(page, dict(_BLANK), errors)
    return page.redirect(org_url(principal, "/yield?done=withdrawn"))


async def _once(page: Page, request: dict[str, Any], work: treasury_defi.Work) -> None:
    principal = principal_of(page)

    async def accept(session: AsyncSession) -> dict[str, Any]:
        return views.movement_out(await work(session)).model_dump(mode="json")

    await once(
        page,
        principal.idempotency_scope,
        {"organisation_id": str(principal.organisation_id), **request},
        accept,
    )


async def _page(page: Page, values: dict[str, str], errors: FormErrors) -> Response:
    principal = principal_of(page)
    services = page.request.app.state.services
    positions = await treasury_defi.positions(page.db, services, principal)
    catalog = await treasury_defi.strategies(page.db, services)
    profile = await treasury_defi.risk_profile(page.db, principal)
    names = {view.strategy.id: view.strategy.name for view in catalog}
    return render(
        page,
        "business/yield.html",
        {
            "positions": [p for p in positions.items if p.status not in ("closed", "failed")],
            "totals": positions.totals,
            "catalog": catalog,
            "choices": [(v.strategy.id, v.strategy.name) for v in catalog if v.available],
            "strategy_names": names,
            "risk_profile": profile,
            "can_invest": role_allows(principal.role or OrgRole.VIEWER, INVEST_TREASURY),
            "values": values,
            "errors": errors,
            "form_key": new_form_key(),
            "notice": page.request.query_params.get("done", ""),
        },
        status=errors.status_code if errors else 200,
    )
