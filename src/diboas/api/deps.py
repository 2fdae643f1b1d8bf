"""Request dependencies: settings, the database, and the permission every route declares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.settings import Settings

T = TypeVar("T")


class Database:
    """The request's way to the database: each unit of work is one committed transaction.

    Work is committed before the endpoint returns, so nothing is acknowledged that is not
    durable; deadlocks and serialization failures run the unit again.
    """

    def __init__(self, sessions: SessionFactory, settings: Settings, engine: AsyncEngine) -> None:
        self.sessions = sessions
        self.settings = settings
        self.engine = engine

    async def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``work(session)`` in one transaction and commit it."""
        return await run_in_transaction(
            self.sessions, work, max_retries=self.settings.db_max_retries
        )

    async def read_one(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``work(session)`` — a single read statement — outside any transaction.

        One round trip instead of three (no BEGIN, no COMMIT): for hot single-statement
        reads such as the per-request session check. Anything that writes, or reads twice
        and needs both reads to agree, goes through ``run``.
        """
        return await self.autocommit(work)

    async def autocommit(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``work(session)`` with each statement committed on its own (no BEGIN/COMMIT).

        Only for work that is correct statement by statement: at most one write, which
        depends on nothing read before it staying true (a fee quote: read the schedule,
        insert the quote). Everything else goes through ``run``.
        """
        async with self.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            async with AsyncSession(bind=autocommit) as session:
                return await work(session)


# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a worker
# thread, a hop that costs more than the work they do.
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_database(request: Request) -> Database:
    return Database(
        request.app.state.sessions, request.app.state.settings, request.app.state.engine
    )


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
