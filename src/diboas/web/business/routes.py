"""Every route of the business app."""

from __future__ import annotations

from diboas.web.business import (
    credentials,
    members,
    organisations,
    payouts,
    reports,
    yield_pages,
)
from diboas.web.routing import WebRoute


def all_routes() -> list[WebRoute]:
    """The business app's pages, in matching order."""
    return [
        *organisations.routes.routes,
        *organisations.org_routes.routes,
        *members.org_routes.routes,
        *credentials.org_routes.routes,
        *payouts.org_routes.routes,
        *reports.org_routes.routes,
        *yield_pages.org_routes.routes,
    ]
