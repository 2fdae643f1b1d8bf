"""Every route of the consumer app."""

from __future__ import annotations

from diboas.web.consumer import account, auth, money
from diboas.web.routing import WebRoute


def all_routes() -> list[WebRoute]:
    """The consumer app's pages, in matching order."""
    return [*auth.routes.routes, *money.routes.routes, *account.routes.routes]
