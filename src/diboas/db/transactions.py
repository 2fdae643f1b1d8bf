"""One database transaction per unit of work, run again on deadlock or serialization failure."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.errors import is_retryable
from diboas.observability.metrics import DB_TRANSACTION_RETRIES

T = TypeVar("T")

_AFTER_COMMIT = "after_commit"
log = structlog.get_logger(__name__)


def after_commit(session: AsyncSession, hook: Callable[[], Awaitable[None]]) -> None:
    """Run ``hook`` once the session's transaction has committed (never if it rolls back)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(hook)


_BACKOFF_BASE_SECONDS = 0.002
_BACKOFF_CAP_SECONDS = 0.2


async def run_in_transaction(
    sessions: SessionFactory,
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    max_retries: int = 8,
) -> T:
    """Run ``work`` in its own transaction and commit it.

    A deadlock or serialization failure (also raised at commit by deferred triggers) rolls
    the transaction back and runs ``work`` again, with jittered exponential backoff, up to
    ``max_retries`` times; the caller never sees one unless every attempt met it. ``work``
    must therefore do nothing outside the transaction that cannot be repeated.
    """
    attempt = 0
    while True:
        try:
            async with sessions() as session:
                async with session.begin():
                    result = await work(session)
                for hook in session.info.pop(_AFTER_COMMIT, []):
                    try:
                        await hook()
                    except Exception:  # committed already: a failed hook must not undo it
                        log.exception("after-commit hook failed")
                return result
        except Exception as exc:
            if not is_retryable(exc) or attempt >= max_retries:
                raise
            DB_TRANSACTION_RETRIES.inc()
            ceiling = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)
            await asyncio.sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not security
            attempt += 1
