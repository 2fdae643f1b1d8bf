"""Shared pieces of the key-rotation tests: a database of their own (re-sealing walks whole
tables and the status counts every row, so other tests' rows must not be in it), the three
configurations a rotation goes through, and serving the app under one of them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
from pydantic import SecretStr
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.db.engine import create_engine
from diboas.db.migrate import upgrade
from diboas.db.urls import plain_url, with_database
from diboas.settings import DEFAULT_ENCRYPTION_KEY, Settings
from tests.api.conftest import settings_for_tests

OLD_SECRET = DEFAULT_ENCRYPTION_KEY  # what every test database's data is sealed under
NEW_SECRET = "rotation-test-second-encryption-key-0123456789"


def before(smtp_port: int, **overrides: Any) -> Settings:
    """Before the rotation (and a process that never got the new key): version 1 only."""
    return settings_for_tests(smtp_port, **overrides)


def during(smtp_port: int, **overrides: Any) -> Settings:
    """During the rotation: version 2 seals, version 1 still opens."""
    return settings_for_tests(
        smtp_port,
        encryption_key=SecretStr(NEW_SECRET),
        encryption_key_version=2,
        encryption_keys_previous={1: SecretStr(OLD_SECRET)},
        **overrides,
    )


def after(smtp_port: int, **overrides: Any) -> Settings:
    """After the rotation: version 1 dropped."""
    return settings_for_tests(
        smtp_port, encryption_key=SecretStr(NEW_SECRET), encryption_key_version=2, **overrides
    )


@asynccontextmanager
async def own_database(server: str) -> AsyncIterator[tuple[URL, AsyncEngine]]:
    """A freshly migrated database (and an engine on it), dropped afterwards."""
    name = f"diboas_rotation_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(plain_url(with_database(server, "postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(server, name)
        await upgrade(url)
        engine = create_engine(url, pool_size=4, max_overflow=4)
        try:
            yield url, engine
        finally:
            await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@asynccontextmanager
async def serving(settings: Settings, url: URL) -> AsyncIterator[httpx.AsyncClient]:
    """The app (with its in-process worker) under ``settings``, on the database at ``url``."""
    app = create_app(settings, database_url=plain_url(url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
