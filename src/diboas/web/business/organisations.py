"""The business app's home (your organisations, a new one) and an organisation's treasury:
its balance, funding it from your own balance, its latest movements."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from diboas.balances import service as balances
from diboas.business import schemas, treasury_defi
from diboas.business.access import MANAGE, PERMISSION, READ_TREASURY, client_address
from diboas.business.service import allowlist, exports, organisations
from diboas.compliance import audit, limits
from diboas.kit.errors import DomainError
from diboas.ledger.models import OwnerType
from diboas.market.prices import service_for
from diboas.web.business.common import HOME, OrgRoutes, org_url, principal_of, render
from diboas.web.consumer.movements import new_form_key, once
from diboas.web.forms import FormErrors, validate
from diboas.web.routing import Page, WebRoutes

routes = WebRoutes()
org_routes = OrgRoutes()
RECENT_MOVEMENTS = 10


@routes.add(HOME, access=PERMISSION, methods=("GET", "POST"))
async def home(page: Page) -> Response:
    user = page.me()
    values = {"name": ""}
    errors = FormErrors()
    if page.request.method == "POST":
        values = {"name": page.field("name")}
        body, errors = validate(schemas.OrganisationIn, values)
        if body is not None:
            # As the API does: the creator's address (never loopback) opens the allow-list.
            network = allowlist.creator_network(client_address(page.request, page.settings))
            context = audit.request_context(page.request, user)
            created = await page.db.run(
                lambda s: organisations.create(
                    s, name=body.name, creator_id=user.id, creator_network=network, context=context
                )
            )
            return page.redirect(f"{HOME}/orgs/{created.id}?done=created")
    memberships = await page.db.run(lambda s: organisations.mine(s, user.id))
    return page.render(
        "business/home.html",
        {
            "memberships": memberships,
            "values": values,
            "errors": errors,
            "notice": page.request.query_params.get("done", ""),
        },
        status=errors.status_code if errors else 200,
    )


@org_routes.add("", READ_TREASURY)
async def treasury(page: Page) -> Response:
    return await _treasury_page(page, {"amount": "", "note": ""}, FormErrors())


@org_routes.add("/fundings", MANAGE, methods=("POST",))
async def fund(page: Page) -> Response:
    values = {"amount": page.field("amount"), "note": page.field("note")}
    body, errors = validate(schemas.FundingIn, {**values, "currency": "USD"})
    if body is not None:
        try:
            await _fund(page, body)
        except DomainError as refusal:
            errors.add_domain_error(refusal)
        else:
            return page.redirect(org_url(principal_of(page), "?done=funded"))
    return await _treasury_page(page, values, errors)


async def _fund(page: Page, body: schemas.FundingIn) -> None:
    # The API's funding (organisations.fund) once per form; a refusal by the admin's own
    # limits is audited in a transaction of its own, as the API's endpoint does.
    principal, admin = principal_of(page), page.me()
    context = principal.audit_context(page.request)

    async def work(session: AsyncSession) -> dict[str, Any]:
        funded = await organisations.fund(
            session, page.settings, principal, request=body, context=context
        )
        return {"id": str(funded.id)}

    request = {"business": "funding", "organisation_id": str(principal.organisation_id)}
    try:
        await once(page, f"user:{admin.id}", {**request, **body.model_dump()}, work)
    except limits.REFUSALS as refusal:
        await limits.record_refusal(
            page.db.sessions,
            context,
            user=admin,
            movement="transfer",
            amount_usd=Decimal(body.amount),
            error=refusal,
        )
        raise


async def _treasury_page(page: Page, values: dict[str, str], errors: FormErrors) -> Response:
    organisation_id = principal_of(page).organisation_id

    async def read(session: AsyncSession) -> tuple[Any, Any]:
        snap = await balances.snapshot(
            session, owner_id=organisation_id, at=None, owner_type=OwnerType.ORGANISATION
        )
        movements = await exports.movements_page(
            session, organisation_id, cursor=None, limit=RECENT_MOVEMENTS
        )
        return snap, movements.items

    snap, movements = await page.db.run(read)
    # Valued after the transaction: the price feed is never asked while a connection is held.
    services = page.request.app.state.services
    sheet = await balances.valued(service_for(services), snap, None)
    try:
        defi = await treasury_defi.summary(page.db, services, principal_of(page))
    except DomainError:
        defi = None  # a vault that cannot be read now: the yield page says why
    return render(
        page,
        "business/treasury.html",
        {
            "sheet": sheet,
            "defi": defi,
            "movements": movements,
            "values": values,
            "errors": errors,
            "form_key": new_form_key(),
            "notice": page.request.query_params.get("done", ""),
        },
        status=errors.status_code if errors else 200,
    )
