"""Request dependencies: settings, the database, and the permission every route declares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.settings import Settings

T = TypeVar("T")


class Database:
    """The request's way to the database: each unit of work is one committed transaction.

    Work is committed before the endpoint returns, so nothing is acknowledged that is not
    durable; deadlocks and serialization failures run the unit again.
    """

    def __init__(self, sessions: SessionFactory, settings: Settings) -> None:
        self.sessions = sessions
        self.settings = settings

    async def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``work(session)`` in one transaction and commit it."""
        return await run_in_transaction(
            self.sessions, work, max_retries=self.settings.db_max_retries
        )


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    return Database(request.app.state.sessions, request.app.state.settings)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
