"""Idempotency keys, on committed data: one effect however often a request arrives."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.kit.errors import (
    IdempotencyKeyInFlightError,
    IdempotencyKeyReusedError,
    InsufficientFundsError,
    InvalidRequestError,
)
from diboas.ledger import idempotency, service
from diboas.ledger.idempotency import IdempotencyPolicy, StoredResponse
from diboas.ledger.models import Account
from tests.ledger.factories import user_account


async def _pair(sessions: SessionFactory, funded: str = "100.00") -> tuple[Account, Account]:
    async def make(session: AsyncSession) -> tuple[Account, Account]:
        return await user_account(session, funded=funded), await user_account(session)

    return await run_in_transaction(sessions, make)


async def _count_entries(sessions: SessionFactory, reference: str) -> int:
    async def count(session: AsyncSession) -> int:
        result = await session.execute(
            text("SELECT count(*) FROM entries WHERE reference = :r"), {"r": reference}
        )
        return int(result.scalar_one())

    return await run_in_transaction(sessions, count)


def _transfer(source: Account, destination: Account, amount: str, reference: str) -> Any:
    async def work(session: AsyncSession) -> tuple[int, dict[str, Any]]:
        entry = await service.transfer(
            session,
            source=source,
            destination=destination,
            amount=Decimal(amount),
            reference=reference,
        )
        return 201, {"entry_id": entry.id, "amount": amount}

    return work


async def test_replay_returns_the_first_answer_and_moves_money_once(
    sessions: SessionFactory,
) -> None:
    source, destination = await _pair(sessions)
    ref = f"test:{uuid.uuid4()}"
    key, scope = str(uuid.uuid4()), f"user:{source.owner_id}"
    request = {"to": destination.id, "amount": "10.00"}

    first = await idempotency.run_idempotent(
        sessions,
        scope=scope,
        key=key,
        request=request,
        work=_transfer(source, destination, "10.00", ref),
    )
    again = await idempotency.run_idempotent(
        sessions,
        scope=scope,
        key=key,
        request=request,
        work=_transfer(source, destination, "10.00", ref),
    )

    assert first == StoredResponse(201, first.body, replayed=False)
    assert again == StoredResponse(201, first.body, replayed=True)
    assert await _count_entries(sessions, ref) == 1


async def test_same_key_with_a_different_request_is_refused(sessions: SessionFactory) -> None:
    source, destination = await _pair(sessions)
    ref = f"test:{uuid.uuid4()}"
    key = str(uuid.uuid4())
    await idempotency.run_idempotent(
        sessions,
        scope="s",
        key=key,
        request={"amount": "1.00"},
        work=_transfer(source, destination, "1.00", ref),
    )
    with pytest.raises(IdempotencyKeyReusedError):
        await idempotency.run_idempotent(
            sessions,
            scope="s",
            key=key,
            request={"amount": "2.00"},
            work=_transfer(source, destination, "2.00", ref),
        )
    assert await _count_entries(sessions, ref) == 1


async def test_keys_are_scoped_to_their_caller(sessions: SessionFactory) -> None:
    source, destination = await _pair(sessions)
    ref = f"test:{uuid.uuid4()}"
    key = str(uuid.uuid4())
    for scope in ("user:a", "user:b"):
        answer = await idempotency.run_idempotent(
            sessions,
            scope=scope,
            key=key,
            request={},
            work=_transfer(source, destination, "1.00", ref),
        )
        assert answer.replayed is False
    assert await _count_entries(sessions, ref) == 2


async def test_fifty_concurrent_requests_with_one_key_have_one_effect(
    sessions: SessionFactory,
) -> None:
    source, destination = await _pair(sessions, funded="1000.00")
    ref = f"test:{uuid.uuid4()}"
    key = str(uuid.uuid4())
    request = {"amount": "7.00"}

    async def attempt() -> StoredResponse | Exception:
        try:
            return await idempotency.run_idempotent(
                sessions,
                scope="conc",
                key=key,
                request=request,
                work=_transfer(source, destination, "7.00", ref),
            )
        except IdempotencyKeyInFlightError as busy:
            return busy

    outcomes = await asyncio.gather(*(attempt() for _ in range(50)))

    fresh = [o for o in outcomes if isinstance(o, StoredResponse) and not o.replayed]
    replays = [o for o in outcomes if isinstance(o, StoredResponse) and o.replayed]
    busy = [o for o in outcomes if isinstance(o, IdempotencyKeyInFlightError)]
    assert len(fresh) == 1
    assert len(fresh) + len(replays) + len(busy) == 50
    assert all(r.body == fresh[0].body for r in replays)
    assert await _count_entries(sessions, ref) == 1

    async def balances(session: AsyncSession) -> tuple[Decimal, Decimal]:
        return (
            (await service.balance(session, source.id)).balance,
            (await service.balance(session, destination.id)).balance,
        )

    assert await run_in_transaction(sessions, balances) == (Decimal("993.00"), Decimal("7.00"))
    # Once the first request has finished, every retry is a replay.
    late = await idempotency.run_idempotent(
        sessions,
        scope="conc",
        key=key,
        request=request,
        work=_transfer(source, destination, "7.00", ref),
    )
    assert late.replayed and late.body == fresh[0].body


async def test_a_refusal_is_stored_and_replayed(sessions: SessionFactory) -> None:
    source, destination = await _pair(sessions, funded="5.00")
    ref = f"test:{uuid.uuid4()}"
    key = str(uuid.uuid4())
    with pytest.raises(InsufficientFundsError):
        await idempotency.run_idempotent(
            sessions,
            scope="r",
            key=key,
            request={},
            work=_transfer(source, destination, "6.00", ref),
        )
    replay = await idempotency.run_idempotent(
        sessions, scope="r", key=key, request={}, work=_transfer(source, destination, "6.00", ref)
    )
    assert replay.replayed and replay.status_code == 422
    assert replay.body["error"]["code"] == "insufficient_funds"
    assert await _count_entries(sessions, ref) == 0


async def test_an_unexpected_failure_frees_the_key(sessions: SessionFactory) -> None:
    source, destination = await _pair(sessions)
    ref = f"test:{uuid.uuid4()}"
    key = str(uuid.uuid4())

    async def crash(session: AsyncSession) -> tuple[int, Any]:
        await service.transfer(
            session, source=source, destination=destination, amount=Decimal("3"), reference=ref
        )
        raise RuntimeError("the process fell over after posting")

    with pytest.raises(RuntimeError):
        await idempotency.run_idempotent(sessions, scope="f", key=key, request={}, work=crash)
    assert await _count_entries(sessions, ref) == 0  # the posting rolled back with it
    retry = await idempotency.run_idempotent(
        sessions, scope="f", key=key, request={}, work=_transfer(source, destination, "3.00", ref)
    )
    assert retry.replayed is False
    assert await _count_entries(sessions, ref) == 1


async def test_an_abandoned_in_flight_key_is_taken_over_after_its_lease(
    sessions: SessionFactory,
) -> None:
    source, destination = await _pair(sessions)
    ref = f"test:{uuid.uuid4()}"
    key = str(uuid.uuid4())

    async def abandon(session: AsyncSession) -> None:
        # What a request that died between claim and completion leaves behind.
        await session.execute(
            text("""INSERT INTO idempotency_keys (scope, key, fingerprint, state, claim_token, locked_at, expires_at)
                    VALUES ('lease', :k, :f, 'in_flight', gen_random_uuid(), now() - interval '2 minutes',
                            now() + interval '1 day')"""),
            {"k": key, "f": idempotency.fingerprint({})},
        )

    await run_in_transaction(sessions, abandon)
    with pytest.raises(IdempotencyKeyInFlightError):
        await idempotency.run_idempotent(
            sessions,
            scope="lease",
            key=key,
            request={},
            work=_transfer(source, destination, "1.00", ref),
            policy=IdempotencyPolicy(lease=__import__("datetime").timedelta(minutes=5)),
        )
    taken = await idempotency.run_idempotent(
        sessions,
        scope="lease",
        key=key,
        request={},
        work=_transfer(source, destination, "1.00", ref),
    )
    assert taken.replayed is False and await _count_entries(sessions, ref) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\x00key", "tab\tkey"])
async def test_malformed_keys_are_refused(sessions: SessionFactory, key: str) -> None:
    with pytest.raises(InvalidRequestError):
        await idempotency.run_idempotent(sessions, scope="m", key=key, request={}, work=_never)


async def _never(session: AsyncSession) -> tuple[int, Any]:
    raise AssertionError("must not run")


async def test_keys_live_at_least_a_day_and_are_purged_after(sessions: SessionFactory) -> None:
    source, destination = await _pair(sessions)
    key = str(uuid.uuid4())
    await idempotency.run_idempotent(
        sessions,
        scope="ttl",
        key=key,
        request={},
        work=_transfer(source, destination, "1.00", f"t:{key}"),
    )

    async def lifetime(session: AsyncSession) -> float:
        result = await session.execute(
            text(
                "SELECT extract(epoch FROM expires_at - created_at) FROM idempotency_keys WHERE key = :k"
            ),
            {"k": key},
        )
        return float(result.scalar_one())

    assert await run_in_transaction(sessions, lifetime) >= 24 * 3600

    old_key = str(uuid.uuid4())

    async def expired_key(session: AsyncSession) -> None:
        await session.execute(
            text("""INSERT INTO idempotency_keys (scope, key, fingerprint, state, claim_token, status_code,
                                                  response, created_at, expires_at)
                    VALUES ('ttl', :k, 'f', 'completed', gen_random_uuid(), 201, '{}',
                            now() - interval '25 hours', now() - interval '1 hour')"""),
            {"k": old_key},
        )

    await run_in_transaction(sessions, expired_key)
    assert await run_in_transaction(sessions, idempotency.purge_expired) >= 1

    async def still_there(session: AsyncSession) -> int:
        result = await session.execute(
            text("SELECT count(*) FROM idempotency_keys WHERE key = :k"), {"k": key}
        )
        return int(result.scalar_one())

    assert await run_in_transaction(sessions, still_there) == 1
    key = old_key
    assert await run_in_transaction(sessions, still_there) == 0


def test_policy_follows_the_settings() -> None:
    from datetime import timedelta

    from diboas.settings import Settings

    policy = IdempotencyPolicy.from_settings(
        Settings(idempotency_ttl_hours=48, idempotency_lease_seconds=5, db_max_retries=2)
    )
    assert policy == IdempotencyPolicy(
        ttl=timedelta(hours=48), lease=timedelta(seconds=5), max_retries=2
    )
