"""Every route of the consumer app."""

from __future__ import annotations

from diboas.web.consumer import account, auth, defi, invest, money, offline, recovery
from diboas.web.routing import WebRoute


def all_routes() -> list[WebRoute]:
    """The consumer app's pages, in matching order."""
    return [
        *auth.routes.routes,
        *recovery.routes.routes,
        *money.routes.routes,
        *invest.routes.routes,
        *defi.routes.routes,
        *offline.routes.routes,
        *account.routes.routes,
    ]
