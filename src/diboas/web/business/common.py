"""What the business pages share.

Every page under an organisation declares the API's ``Action`` for what it shows or does
(``business.access``), and is checked by the API's own ``access.authorise_member`` before its
form is even read: not a member → 404 (as for an organisation that does not exist), an address
off the organisation's IP allow-list → 403 (audited, as in the API), a role too low → 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from starlette.responses import Response

from diboas.business.access import (
    MANAGE,
    PERMISSION,
    READ_AUDIT,
    READ_ORGANISATION,
    READ_PAYOUTS,
    READ_TRANSACTIONS,
    READ_TREASURY,
    READ_TREASURY_DEFI,
    WRITE_PAYOUTS,
    Action,
    OrgRole,
    Principal,
    authorise_member,
    role_allows,
)
from diboas.business.errors import (
    IpNotAllowedError,
    OrganisationNotFoundError,
    OrganisationRoleError,
)
from diboas.identity.dependencies import ForbiddenError
from diboas.kit.errors import DomainError
from diboas.web.routing import FormReader, Guard, Handler, Page, WebRoute, WebRoutes

HOME = "/business"
ORG_PATH = "/business/orgs/{organisation_id}"


def org_url(principal: Principal, tail: str = "") -> str:
    """The address of one of the organisation's pages."""
    return f"{HOME}/orgs/{principal.organisation_id}{tail}"


def not_found(page: Page) -> Response:
    return page.render(
        "business/refused.html",
        {
            "title": "Organisation not found",
            "message": "There is no such organisation, or you are not a member of it.",
        },
        status=404,
    )


def _refused(page: Page, error: DomainError) -> Response:
    if isinstance(error, IpNotAllowedError):
        details = error.details if isinstance(error.details, dict) else {}
        return page.render(
            "business/refused.html",
            {
                "title": "Not allowed from this network",
                "message": "This organisation accepts requests only from the networks on its "
                "IP allow-list, and your address is not on it.",
                "ip": details.get("ip") or "unknown",
            },
            status=403,
        )
    return page.render(
        "business/refused.html",
        {
            "title": "Not available to your role",
            "message": error.message[:1].upper() + error.message[1:] + ".",
        },
        status=403,
    )


def org_guard(action: Action) -> Guard:
    """The check of an organisation's page: the signed-in user may do ``action`` in the
    organisation of the path, from this address (``page.grant`` holds their Principal)."""

    async def guard(page: Page) -> Response | None:
        try:
            organisation_id = uuid.UUID(page.request.path_params["organisation_id"])
        except ValueError:
            return not_found(page)
        try:
            page.grant = await authorise_member(
                page.request, page.db, organisation_id, page.me(), action
            )
        except OrganisationNotFoundError:
            return not_found(page)
        except (IpNotAllowedError, OrganisationRoleError, ForbiddenError) as refused:
            return _refused(page, refused)
        return None

    guard.action = action  # type: ignore[attr-defined]  # for the route walk's test
    return guard


def principal_of(page: Page) -> Principal:
    """The member the page's guard admitted."""
    if not isinstance(page.grant, Principal):
        raise TypeError("this page has no organisation guard")
    return page.grant


# What the organisation's navigation shows to each role (the pages check again).
_NAV: tuple[tuple[str, str, Action], ...] = (
    ("", "Treasury", READ_TREASURY),
    ("/yield", "Yield", READ_TREASURY_DEFI),
    ("/members", "Members", READ_ORGANISATION),
    ("/payouts", "Payouts", READ_PAYOUTS),
    ("/exports", "Exports", READ_TRANSACTIONS),
    ("/audit", "Audit log", READ_AUDIT),
    ("/api-keys", "API keys", MANAGE),
    ("/allowlist", "IP allow-list", MANAGE),
)


def render(
    page: Page, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> Response:
    """An organisation's page: the organisation, the member's role, what they may do."""
    principal = principal_of(page)
    role = principal.role or OrgRole.VIEWER
    values: dict[str, Any] = {
        "org": principal.organisation,
        "org_url": org_url(principal),
        "role": role.value,
        "client_ip": principal.client_ip,
        "org_nav": [
            (org_url(principal, tail), label) for tail, label, a in _NAV if role_allows(role, a)
        ],
        "can_manage": role_allows(role, MANAGE),
        "can_write_payouts": role_allows(role, WRITE_PAYOUTS),
        "can_read_audit": role_allows(role, READ_AUDIT),
    }
    values.update(context or {})
    return page.render(template, values, status=status)


class OrgRoutes:
    """The pages of one organisation, each declaring the Action it needs."""

    def __init__(self) -> None:
        self.web = WebRoutes()

    @property
    def routes(self) -> list[WebRoute]:
        return self.web.routes

    def add(
        self,
        tail: str,
        action: Action,
        *,
        methods: Iterable[str] = ("GET",),
        form_reader: FormReader | None = None,
    ) -> Callable[[Handler], Handler]:
        return self.web.add(
            ORG_PATH + tail,
            access=PERMISSION,
            methods=methods,
            guard=org_guard(action),
            form_reader=form_reader,
        )


def path_uuid(page: Page, name: str) -> uuid.UUID | None:
    """A UUID in the path, or None when the path holds something else."""
    try:
        return uuid.UUID(page.request.path_params[name])
    except ValueError:
        return None
