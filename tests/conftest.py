"""Test infrastructure: one fresh PostgreSQL database per run, migrated once.

``DIBOAS_TEST_DATABASE_URL`` points at a server (CI: PostgreSQL 15 on 127.0.0.1:5432);
without it the embedded PostgreSQL starts under .data/test-postgres. Each test that takes
``session`` runs inside a transaction rolled back at its end; concurrency tests commit on
their own rows through ``sessions``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from diboas.db.engine import SessionFactory, create_engine, create_session_factory
from diboas.db.migrate import upgrade
from diboas.db.urls import plain_url, with_database

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def database_server() -> Iterator[str]:
    """A PostgreSQL server: the configured one, or the embedded one for this run."""
    configured = os.environ.get("DIBOAS_TEST_DATABASE_URL", "").strip()
    if configured:
        yield configured
        return
    if os.environ.get("CI") == "true" and os.environ.get("DIBOAS_TEST_REQUIRE_SERVER") == "1":
        pytest.fail("DIBOAS_TEST_DATABASE_URL must be set in CI")
    from diboas.db.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(PROJECT_ROOT / ".data" / "test")
    url = embedded.start()
    yield url
    embedded.stop()


@pytest.fixture(scope="session")
async def database_url(database_server: str) -> AsyncIterator[URL]:
    """A database created for this run, migrated once, dropped at the end."""
    name = f"diboas_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(plain_url(with_database(database_server, "postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(database_server, name)
        await upgrade(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="session")
async def engine(database_url: URL) -> AsyncIterator[AsyncEngine]:
    # Room for the concurrency tests' 32+ simultaneous transactions.
    engine = create_engine(database_url, pool_size=40, max_overflow=20)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> SessionFactory:
    """Sessions that really commit (for concurrency and idempotency tests)."""
    return create_session_factory(engine)


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back when the test ends."""
    async with engine.connect() as conn:
        outer = await conn.begin()
        db = AsyncSession(
            bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield db
        finally:
            await db.close()
            await outer.rollback()


@pytest.fixture
async def raw(database_url: URL) -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection in autocommit, for raw SQL against the database itself."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        yield conn
    finally:
        await conn.close()
