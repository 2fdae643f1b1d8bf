"""An organisation's members: the list for every member; adding by email, changing roles and
removing for admins; leaving for anyone. The last admin can be neither demoted nor removed
(``organisations`` refuses it under the organisation's row lock; the page shows why)."""

from __future__ import annotations

from starlette.responses import Response

from diboas.business import schemas
from diboas.business.access import LEAVE, MANAGE, READ_ORGANISATION, OrgRole
from diboas.business.service import organisations
from diboas.kit.errors import DomainError
from diboas.web.business.common import HOME, OrgRoutes, org_url, path_uuid, principal_of, render
from diboas.web.forms import FormErrors, validate
from diboas.web.routing import Page

org_routes = OrgRoutes()
ROLES = (("viewer", "Viewer"), ("member", "Member"), ("admin", "Admin"))


@org_routes.add("/members", READ_ORGANISATION)
async def members(page: Page) -> Response:
    return await _members_page(page, {"email": "", "role": "viewer"}, FormErrors())


@org_routes.add("/members", MANAGE, methods=("POST",))
async def add_member(page: Page) -> Response:
    principal = principal_of(page)
    values = {"email": page.field("email"), "role": page.field("role")}
    body, errors = validate(schemas.MemberIn, values)
    if body is not None:
        context = principal.audit_context(page.request)
        try:
            await page.db.run(
                lambda s: organisations.add_member(
                    s, principal, email=str(body.email), role=OrgRole(body.role), context=context
                )
            )
        except DomainError as refusal:
            errors.add_domain_error(refusal)
        else:
            return page.redirect(org_url(principal, "/members?done=added"))
    return await _members_page(page, values, errors)


@org_routes.add("/members/{user_id}/role", MANAGE, methods=("POST",))
async def change_role(page: Page) -> Response:
    principal = principal_of(page)
    user_id = path_uuid(page, "user_id")
    body, errors = validate(schemas.MemberRoleIn, {"role": page.field("role")})
    if user_id is not None and body is not None:
        context = principal.audit_context(page.request)
        try:
            await page.db.run(
                lambda s: organisations.change_role(
                    s, principal, user_id=user_id, role=OrgRole(body.role), context=context
                )
            )
        except DomainError as refusal:
            errors.add_domain_error(refusal)
        else:
            return page.redirect(org_url(principal, "/members?done=changed"))
    if user_id is None:
        errors[""], errors.status_code = "No such member.", 404
    errors.setdefault("", "The role could not be changed.")
    return await _members_page(page, {"email": "", "role": "viewer"}, errors, form="change")


@org_routes.add("/members/{user_id}/remove", MANAGE, methods=("POST",))
async def remove_member(page: Page) -> Response:
    principal = principal_of(page)
    user_id = path_uuid(page, "user_id")
    errors = FormErrors()
    if user_id is not None:
        context = principal.audit_context(page.request)
        try:
            await page.db.run(
                lambda s: organisations.remove_member(
                    s, principal, user_id=user_id, context=context
                )
            )
        except DomainError as refusal:
            errors.add_domain_error(refusal)
        else:
            return page.redirect(org_url(principal, "/members?done=removed"))
    if user_id is None:
        errors[""], errors.status_code = "No such member.", 404
    return await _members_page(page, {"email": "", "role": "viewer"}, errors, form="change")


@org_routes.add("/leave", LEAVE, methods=("POST",))
async def leave(page: Page) -> Response:
    principal, user_id = principal_of(page), page.me().id
    context = principal.audit_context(page.request)
    errors = FormErrors()
    try:
        await page.db.run(
            lambda s: organisations.remove_member(s, principal, user_id=user_id, context=context)
        )
    except DomainError as refusal:
        errors.add_domain_error(refusal)
        return await _members_page(page, {"email": "", "role": "viewer"}, errors, form="change")
    return page.redirect(f"{HOME}?done=left")


async def _members_page(
    page: Page, values: dict[str, str], errors: FormErrors, *, form: str = "add"
) -> Response:
    principal = principal_of(page)
    found = await page.db.run(lambda s: organisations.members(s, principal.organisation_id))
    return render(
        page,
        "business/members.html",
        {
            "members": found,
            "me": page.me().id,
            "roles": ROLES,
            "values": values,
            # A refusal of a change or removal is shown above the list, not on the add form.
            "errors": errors if form == "add" else FormErrors(),
            "change_errors": errors if form == "change" else FormErrors(),
            "notice": page.request.query_params.get("done", ""),
        },
        status=errors.status_code if errors else 200,
    )
