"""An organisation's credentials, for its admins: API keys (created with scopes, the secret
shown on the answer to the form and never again, listed, revoked) and the IP allow-list
(networks added and removed; removing the one that admits your own address is refused, as in
the API, so an admin cannot lock themselves out)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from diboas.business import schemas
from diboas.business.access import MANAGE, loopback_allowed
from diboas.business.service import allowlist, api_keys
from diboas.kit.errors import DomainError
from diboas.web.business.common import OrgRoutes, org_url, path_uuid, principal_of, render
from diboas.web.consumer.movements import new_form_key, once
from diboas.web.forms import FormErrors, validate
from diboas.web.routing import Page

org_routes = OrgRoutes()
SCOPES = (
    ("organisation:read", "Read the organisation and its members"),
    ("treasury:read", "Read the treasury balance"),
    ("transactions:read", "Read and export movements"),
    ("payouts:read", "Read payout batches"),
    ("payouts:write", "Upload and execute payouts"),
    ("audit:read", "Read the audit log"),
)

# --- API keys -------------------------------------------------------------------------------


@org_routes.add("/api-keys", MANAGE)
async def keys(page: Page) -> Response:
    return await _keys_page(page, {"name": "", "scopes": []}, FormErrors())


@org_routes.add("/api-keys", MANAGE, methods=("POST",))
async def create_key(page: Page) -> Response:
    principal, admin = principal_of(page), page.me()
    values: dict[str, Any] = {"name": page.field("name"), "scopes": page.fields("scopes")}
    body, errors = validate(schemas.ApiKeyIn, values)
    if body is None:
        return await _keys_page(page, values, errors)
    context = principal.audit_context(page.request)
    issued: list[api_keys.IssuedKey] = []

    async def work(session: AsyncSession) -> dict[str, Any]:
        created = await api_keys.create(
            session,
            organisation_id=principal.organisation_id,
            name=body.name,
            scopes=list(body.scopes),
            created_by=admin.id,
            context=context,
        )
        issued.append(created)
        return {"id": str(created.key.id)}  # never the secret: it is not kept anywhere

    request = {"business": "api_key", "organisation_id": str(principal.organisation_id)}
    try:
        stored, replayed = await once(
            page, f"user:{admin.id}", {**request, **body.model_dump()}, work
        )
    except DomainError as refusal:
        errors.add_domain_error(refusal)
        return await _keys_page(page, values, errors)
    return render(
        page,
        "business/api_key_created.html",
        {
            "issued": None if replayed or not issued else issued[0],
            "key_id": stored["id"],
            "keys_url": org_url(principal, "/api-keys"),
        },
        status=200 if replayed else 201,
    )


@org_routes.add("/api-keys/{api_key_id}/revoke", MANAGE, methods=("POST",))
async def revoke_key(page: Page) -> Response:
    principal, admin = principal_of(page), page.me()
    key_id = path_uuid(page, "api_key_id")
    errors = FormErrors()
    if key_id is not None:
        context = principal.audit_context(page.request)
        try:
            await page.db.run(
                lambda s: api_keys.revoke(
                    s,
                    organisation_id=principal.organisation_id,
                    key_id=key_id,
                    revoked_by=admin.id,
                    context=context,
                )
            )
        except DomainError as refusal:
            errors.add_domain_error(refusal)
        else:
            return page.redirect(org_url(principal, "/api-keys?done=revoked"))
    if key_id is None:
        errors[""], errors.status_code = "No such API key.", 404
    return await _keys_page(page, {"name": "", "scopes": []}, errors, revoking=True)


async def _keys_page(
    page: Page, values: dict[str, Any], errors: FormErrors, *, revoking: bool = False
) -> Response:
    organisation_id = principal_of(page).organisation_id
    found = await page.db.run(lambda s: api_keys.listed(s, organisation_id))
    return render(
        page,
        "business/api_keys.html",
        {
            "keys": found,
            "scopes": SCOPES,
            "values": values,
            # A refused revocation is shown above the list, not on the new key's form.
            "errors": FormErrors() if revoking else errors,
            "revoke_errors": errors if revoking else FormErrors(),
            "form_key": new_form_key(),
            "notice": page.request.query_params.get("done", ""),
        },
        status=errors.status_code if errors else 200,
    )


# --- IP allow-list --------------------------------------------------------------------------


@org_routes.add("/allowlist", MANAGE)
async def allowlist_page(page: Page) -> Response:
    return await _allowlist_page(page, {"cidr": "", "label": ""}, FormErrors())


@org_routes.add("/allowlist", MANAGE, methods=("POST",))
async def add_network(page: Page) -> Response:
    principal = principal_of(page)
    values = {"cidr": page.field("cidr"), "label": page.field("label")}
    body, errors = validate(schemas.AllowlistEntryIn, values)
    if body is not None:
        context = principal.audit_context(page.request)
        try:
            await page.db.run(
                lambda s: allowlist.add(
                    s, page.settings, principal, cidr=body.cidr, label=body.label, context=context
                )
            )
        except DomainError as refusal:
            errors.add_domain_error(refusal)
        else:
            return page.redirect(org_url(principal, "/allowlist?done=added"))
    return await _allowlist_page(page, values, errors)


@org_routes.add("/allowlist/{entry_id}/remove", MANAGE, methods=("POST",))
async def remove_network(page: Page) -> Response:
    principal = principal_of(page)
    entry_id = path_uuid(page, "entry_id")
    errors = FormErrors()
    if entry_id is not None:
        context = principal.audit_context(page.request)
        try:
            await page.db.run(
                lambda s: allowlist.remove(
                    s, page.settings, principal, entry_id=entry_id, context=context
                )
            )
        except DomainError as refusal:
            errors.add_domain_error(refusal)
        else:
            return page.redirect(org_url(principal, "/allowlist?done=removed"))
    if entry_id is None:
        errors[""], errors.status_code = "No such allow-list entry.", 404
    return await _allowlist_page(page, {"cidr": "", "label": ""}, errors, removing=True)


async def _allowlist_page(
    page: Page, values: dict[str, str], errors: FormErrors, *, removing: bool = False
) -> Response:
    organisation_id = principal_of(page).organisation_id
    found = await page.db.run(lambda s: allowlist.entries(s, organisation_id))
    return render(
        page,
        "business/allowlist.html",
        {
            "entries": found,
            "loopback_allowed": loopback_allowed(page.settings),
            "values": values,
            # A refused removal (it would lock you out) is shown above the list.
            "errors": FormErrors() if removing else errors,
            "remove_errors": errors if removing else FormErrors(),
            "notice": page.request.query_params.get("done", ""),
        },
        status=errors.status_code if errors else 200,
    )
