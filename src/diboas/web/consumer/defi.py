"""DeFi in the consumer app: the strategy catalog (APY, risk, lock-up), investing from the
banking balance, positions valued at the vault's share price, withdrawing.

The same steps as the API (``diboas.defi.steps``). Each form carries an idempotency key from
when it was rendered, so a form sent twice invests (or withdraws) once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from diboas.compliance import audit
from diboas.defi import schemas, steps, views
from diboas.defi.repository import list_positions, list_strategies
from diboas.kit.errors import DomainError
from diboas.web.consumer.movements import new_form_key, once
from diboas.web.forms import FormErrors, validate
from diboas.web.routing import Page, WebRoutes

routes = WebRoutes()


async def _once(page: Page, request: dict[str, Any], work: steps.Work) -> uuid.UUID:
    """Run an accepted movement once for the form's key; its transaction id."""

    async def accept(session: AsyncSession) -> dict[str, Any]:
        return views.movement_out(await work(session)).model_dump(mode="json")

    body, _ = await once(page, f"user:{page.me().id}", request, accept)
    return uuid.UUID(str(body["id"]))


@routes.add("/app/defi", access="defi:invest", methods=("GET", "POST"))
async def defi(page: Page) -> Response:
    values = {"strategy_id": "usdc-core", "amount": "", "acknowledge_risk": ""}
    errors = FormErrors()
    if page.request.method == "POST":
        values = {k: page.field(k) for k in values}
        body, errors = validate(
            schemas.InvestIn,
            {**values, "acknowledge_risk": values["acknowledge_risk"] == "yes"},
        )
        if body is not None:
            context = audit.request_context(page.request, page.me())
            services = page.request.app.state.services
            try:
                work = await steps.invest(
                    page.db, services, user_id=page.me().id, body=body, context=context
                )
                created = await _once(page, body.model_dump(mode="json"), work)
            except DomainError as refusal:
                errors.add_domain_error(refusal)
            else:
                return page.redirect(f"/app/transactions/{created}")
    return await _defi_page(page, values, errors)


@routes.add("/app/defi/positions/{position_id}/withdraw", access="defi:invest", methods=("POST",))
async def withdraw(page: Page) -> Response:
    try:
        position_id = uuid.UUID(page.request.path_params["position_id"])
    except ValueError:
        return page.redirect("/app/defi")
    context = audit.request_context(page.request, page.me())
    services = page.request.app.state.services
    errors = FormErrors()
    try:
        work = await steps.withdraw(
            page.db,
            services,
            user_id=page.me().id,
            position_id=position_id,
            amount=None,
            context=context,
        )
        created = await _once(page, {"withdraw": str(position_id)}, work)
    except DomainError as refusal:
        errors.add_domain_error(refusal)
        return await _defi_page(page, {"strategy_id": "usdc-core", "amount": ""}, errors)
    return page.redirect(f"/app/transactions/{created}")


async def _defi_page(page: Page, values: dict[str, str], errors: FormErrors) -> Response:
    user_id = page.me().id
    services = page.request.app.state.services
    catalog = await steps.catalog_views(page.db, services)

    async def read(session: AsyncSession) -> tuple[Any, Any]:
        return await list_positions(session, user_id), await list_strategies(session)

    positions, strategies = await page.db.run(read)
    valued = await views.positions_out(
        services, page.settings, positions, {s.id: s for s in strategies}
    )
    return page.render(
        "consumer/defi.html",
        {
            "values": values,
            "errors": errors,
            "catalog": catalog,
            "choices": [(v.strategy.id, v.strategy.name) for v in catalog if v.available],
            "positions": [p for p in valued.items if p.status not in ("closed", "failed")],
            "strategy_names": {s.id: s.name for s in strategies},
            "form_key": new_form_key(),
        },
        status=errors.status_code if errors else 200,
    )
