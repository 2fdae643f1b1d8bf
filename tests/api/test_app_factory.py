"""The app factory uvicorn's worker processes use (DIBOAS_WEB_CONCURRENCY > 1)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.engine import URL

from diboas.api.app import app_from_environment
from diboas.db.urls import plain_url
from diboas.settings import get_settings


async def test_the_factory_builds_the_app_from_the_environment(
    database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIBOAS_DATABASE_URL", plain_url(database_url))
    monkeypatch.setenv("DIBOAS_RUN_WORKER_IN_PROCESS", "false")
    get_settings.cache_clear()
    try:
        app = app_from_environment()
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/readyz")).json()["database"] == "ok"
        assert app.state.settings.database_url == plain_url(database_url)
    finally:
        get_settings.cache_clear()
