"""Idempotency keys: a retried request has its effect once, and gets the first answer again.

A key is scoped to its caller (e.g. ``user:<id>``) and bound to a fingerprint of the request.
It is claimed in a short transaction of its own, so a concurrent duplicate sees it in flight
(409); the answer is stored in the same transaction as the effect, so either both commit or
neither does. Keys are kept in PostgreSQL for at least 24 hours.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.kit.errors import (
    ConflictError,
    DomainError,
    IdempotencyKeyInFlightError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
)
from diboas.observability.metrics import IDEMPOTENCY_OUTCOMES
from diboas.settings import Settings

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The answer to an idempotent request, as first given."""

    status_code: int
    body: Any
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class IdempotencyPolicy:
    """How long keys live and when an in-flight key counts as abandoned."""

    ttl: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(seconds=60)
    max_retries: int = 8

    @classmethod
    def from_settings(cls, settings: Settings) -> IdempotencyPolicy:
        """The policy the platform's settings describe."""
        return cls(
            ttl=timedelta(hours=settings.idempotency_ttl_hours),
            lease=timedelta(seconds=settings.idempotency_lease_seconds),
            max_retries=settings.db_max_retries,
        )


def fingerprint(request: Any) -> str:
    """A stable digest of a request (canonical JSON: sorted keys, no spaces)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def error_body(error: DomainError) -> dict[str, Any]:
    """The stored form of a refusal (the request id is added when it is rendered)."""
    return {"error": {"code": error.code, "message": error.message, "details": error.details}}


_CLAIM = text("""
    INSERT INTO idempotency_keys (scope, key, fingerprint, state, claim_token, expires_at)
    VALUES (:scope, :key, :fingerprint, 'in_flight', :token, now() + CAST(:ttl AS interval))
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING claim_token
""")
_EXISTING = text("""
    SELECT fingerprint, state, status_code, response,
           locked_at < now() - CAST(:lease AS interval) AS abandoned, expires_at < now() AS expired
      FROM idempotency_keys WHERE scope = :scope AND key = :key FOR UPDATE
""")
_TAKE_OVER = text("""
    UPDATE idempotency_keys
       SET fingerprint = :fingerprint, state = 'in_flight', claim_token = :token,
           status_code = NULL, response = NULL, completed_at = NULL,
           locked_at = now(), created_at = now(), expires_at = now() + CAST(:ttl AS interval)
     WHERE scope = :scope AND key = :key
""")
_COMPLETE = text("""
    UPDATE idempotency_keys
       SET state = 'completed', status_code = :status_code, response = CAST(:response AS jsonb),
           completed_at = now()
     WHERE scope = :scope AND key = :key AND claim_token = :token AND state = 'in_flight'
""")
_ABANDON = text("""
    DELETE FROM idempotency_keys
     WHERE scope = :scope AND key = :key AND claim_token = :token AND state = 'in_flight'
""")
_PURGE = text("DELETE FROM idempotency_keys WHERE expires_at < now() - CAST(:grace AS interval)")


async def _claim(
    sessions: SessionFactory, scope: str, key: str, digest: str, policy: IdempotencyPolicy
) -> uuid.UUID | StoredResponse:
    token = uuid.uuid4()
    params = {"scope": scope, "key": key, "fingerprint": digest, "token": token, "ttl": policy.ttl}
    # The common case, a new key, is one statement: claim it outside a transaction (one round
    # trip, committed at once). A key that exists is examined under a row lock below.
    engine = sessions.kw["bind"]
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        if (await autocommit.execute(_CLAIM, params)).scalar() is not None:
            return token

    async def claim(session: AsyncSession) -> uuid.UUID | StoredResponse:
        if (await session.execute(_CLAIM, params)).scalar() is not None:
            return token
        row = (
            await session.execute(_EXISTING, {"scope": scope, "key": key, "lease": policy.lease})
        ).one_or_none()
        if row is None or row.expired or (row.state == "in_flight" and row.abandoned):
            # Gone since the insert, past its lifetime, or left by a request that died.
            if row is None:
                await session.execute(_CLAIM, params)
            else:
                await session.execute(_TAKE_OVER, params)
            return token
        if row.fingerprint != digest:
            IDEMPOTENCY_OUTCOMES.labels("mismatch").inc()
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was used with a different request", details={"key": key}
            )
        if row.state == "in_flight":
            IDEMPOTENCY_OUTCOMES.labels("in_flight").inc()
            raise IdempotencyKeyInFlightError(
                "a request with this Idempotency-Key is still in progress", details={"key": key}
            )
        IDEMPOTENCY_OUTCOMES.labels("replayed").inc()
        return StoredResponse(row.status_code, row.response, replayed=True)

    return await run_in_transaction(sessions, claim, max_retries=policy.max_retries)


async def run_idempotent(
    sessions: SessionFactory,
    *,
    scope: str,
    key: str,
    request: Any,
    work: Callable[[AsyncSession], Awaitable[tuple[int, Any]]],
    policy: IdempotencyPolicy | None = None,
) -> StoredResponse:
    """Run ``work`` once for (scope, key); replays get the first stored answer.

    ``work`` returns (status code, JSON body) and runs in one transaction with the storing
    of that answer. A DomainError it raises is stored as the answer too (a retry gets the
    same refusal) and raised again; any other failure frees the key for a retry.
    """
    policy = policy or IdempotencyPolicy()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidRequestError(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters"
        )
    digest = fingerprint(request)
    claimed = await _claim(sessions, scope, key, digest, policy)
    if isinstance(claimed, StoredResponse):
        return claimed
    IDEMPOTENCY_OUTCOMES.labels("claimed").inc()
    owned = {"scope": scope, "key": key, "token": claimed}

    async def store(session: AsyncSession, status_code: int, body: Any) -> None:
        result = await session.execute(
            _COMPLETE, {**owned, "status_code": status_code, "response": json.dumps(body)}
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            # The lease ran out and another request took the key over: this one must not land.
            raise ConflictError("the Idempotency-Key was taken over by a retry")

    async def work_and_store(session: AsyncSession) -> StoredResponse:
        status_code, body = await work(session)
        await store(session, status_code, body)
        return StoredResponse(status_code, body)

    try:
        return await run_in_transaction(sessions, work_and_store, max_retries=policy.max_retries)
    except DomainError as refusal:

        async def store_refusal(session: AsyncSession, error: DomainError = refusal) -> None:
            await store(session, error.status_code, error_body(error))

        await run_in_transaction(sessions, store_refusal, max_retries=policy.max_retries)
        raise
    except BaseException:

        async def abandon(session: AsyncSession) -> None:
            await session.execute(_ABANDON, owned)

        await run_in_transaction(sessions, abandon, max_retries=policy.max_retries)
        raise


async def purge_expired(session: AsyncSession, *, grace: timedelta = timedelta(0)) -> int:
    """Delete keys past their lifetime (plus ``grace``); returns how many."""
    result = await session.execute(_PURGE, {"grace": grace})
    return int(result.rowcount)  # type: ignore[attr-defined]
