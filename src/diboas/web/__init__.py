"""The web apps: the marketing site at ``/``, the consumer app at ``/app`` and the business
app at ``/business`` (signed in with the consumer app's session; each organisation's pages
check the member's role and the organisation's IP allow-list exactly as its API does).

Server-rendered pages (one Jinja2 environment, compiled templates kept), a plain-CSS design
system, a little hand-written JavaScript, every asset served by the platform itself under a
content-hashed name. Pages call the platform's services in process — the same service
functions the API's endpoints call — never the API over HTTP.
"""

from __future__ import annotations

from fastapi import FastAPI

from diboas.settings import Settings
from diboas.web.assets import Assets
from diboas.web.ratelimit import CredentialLimiter
from diboas.web.routing import NamedRoute, WebRoute, WebState
from diboas.web.security import WebKeys
from diboas.web.templating import create_environment


def web_routes() -> list[WebRoute]:
    """Every page of the web apps."""
    from diboas.web.business.routes import all_routes as business_routes
    from diboas.web.consumer.routes import all_routes as consumer_routes
    from diboas.web.fallback import routes as fallback
    from diboas.web.marketing.routes import routes as marketing

    return [*marketing.routes, *consumer_routes(), *business_routes(), *fallback.routes]


def install(app: FastAPI, settings: Settings) -> None:
    """Add the web apps and their static files to ``app`` (after the API's routes)."""
    assets = Assets()
    app.state.web = WebState(
        env=create_environment(assets),
        keys=WebKeys(settings),
        settings=settings,
        limiter=CredentialLimiter(settings),
    )
    app.router.routes.append(
        NamedRoute("/static/{name:path}", assets.serve, methods=["GET", "HEAD"], name="static")
    )
    app.router.routes.extend(web_routes())
