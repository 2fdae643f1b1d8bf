"""The application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from diboas import __version__
from diboas.api.errors import install_error_handlers
from diboas.api.middleware import RequestContextMiddleware
from diboas.api.ratelimit import RateLimitMiddleware
from diboas.db.engine import create_engine, create_session_factory
from diboas.observability.health import router as health_router
from diboas.orchestration.worker import Worker, run_until_cancelled
from diboas.providers.health import keep_checking
from diboas.realtime.events import HUB_KEY
from diboas.realtime.hub import hub_for
from diboas.settings import Settings

API_PREFIX = "/api/v1"


def _api_routers() -> list[Any]:
    from diboas.balances.endpoints import router as balances
    from diboas.banking.admin_endpoints import router as banking_admin
    from diboas.banking.endpoints import router as banking
    from diboas.business.endpoints import router as business
    from diboas.compliance.endpoints import router as compliance
    from diboas.defi.endpoints import router as defi
    from diboas.fees.endpoints import router as fees
    from diboas.identity.endpoints import router as identity
    from diboas.investing.endpoints import router as investing
    from diboas.ledger.endpoints import router as ledger
    from diboas.market.endpoints import router as market
    from diboas.orchestration.webhooks import router as webhooks
    from diboas.realtime.endpoints import router as realtime

    return [
        identity,
        compliance,
        banking,
        banking_admin,
        balances,
        fees,
        market,
        ledger,
        webhooks,
        investing,
        realtime,
        defi,
        business,
    ]


def create_app(
    settings: Settings, *, database_url: str, services: dict[str, Any] | None = None
) -> FastAPI:
    """The platform's ASGI app on the database at ``database_url``.

    ``services`` overrides provider implementations (tests hand in local counterparts).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        )
        app.state.engine = engine
        hub = app.state.services.get("realtime_hub") or hub_for(settings.redis_url)
        await hub.start()
        app.state.hub = hub
        app.state.sessions = create_session_factory(engine, info={HUB_KEY: hub})
        worker_task: asyncio.Task[None] | None = None
        health_task = asyncio.create_task(keep_checking(settings), name="provider-health")
        if settings.run_worker_in_process:
            worker = Worker(database_url, app.state.sessions, settings, app.state.services)
            worker_task = asyncio.create_task(run_until_cancelled(worker), name="diboas-worker")
        try:
            yield
        finally:
            health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await health_task
            if worker_task is not None:
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            await engine.dispose()
            await hub.close()

    app = FastAPI(
        title="diBoaS API",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.services = dict(services or {})
    install_error_handlers(app)
    # The request context is added last so it wraps everything: a request id exists before
    # a rate limit can refuse the request.
    app.add_middleware(
        RateLimitMiddleware, settings=settings, storage=(services or {}).get("rate_limit_storage")
    )
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_router)
    for router in _api_routers():
        app.include_router(router, prefix=API_PREFIX)
    # The web apps (marketing at /, consumer at /app, /static): plain Starlette routes after
    # the API's, outside /api/v1 and outside its schema (see diboas.web.routing).
    from diboas.web import install as install_web

    install_web(app, settings)
    return app


def iter_api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """Every API route of the app with its full path (included routers flattened)."""
    found: list[tuple[str, APIRoute]] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.append((prefix + route.path, route))
            elif hasattr(route, "original_router"):  # a router included into this one
                walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif hasattr(route, "routes"):
                walk(route.routes, prefix + getattr(route, "path", ""))

    walk(list(app.routes), "")
    return found


def app_from_environment() -> FastAPI:
    """The app as a factory for uvicorn's worker processes (``DIBOAS_WEB_CONCURRENCY`` > 1)."""
    from diboas.observability.logging import configure_logging
    from diboas.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings, database_url=settings.database_url)
