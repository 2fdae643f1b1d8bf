"""Durable jobs: staged in the caller's transaction (outbox), run by the worker, retried with
backoff, parked as failed (dead letter) when out of attempts."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.db.urls import plain_url
from diboas.orchestration import jobs
from diboas.orchestration.jobs import JobContext
from diboas.orchestration.worker import Worker, run_until_cancelled
from diboas.settings import Settings

SEEN: dict[str, list[int]] = {}


@jobs.job("tests.record", max_attempts=3)
async def record(context: JobContext, payload: dict[str, Any]) -> None:
    SEEN.setdefault(payload["marker"], []).append(context.attempt)
    if payload.get("fail_times", 0) > context.attempt:
        raise RuntimeError("transient failure")


async def _queued(sessions: SessionFactory, marker: str) -> list[str]:
    async def read(session: AsyncSession) -> list[str]:
        rows = await session.execute(
            text(
                "SELECT status::text FROM pgqueuer WHERE entrypoint = 'tests.record' AND convert_from(payload, 'UTF8') LIKE :m"
            ),
            {"m": f"%{marker}%"},
        )
        return list(rows.scalars())

    return await run_in_transaction(sessions, read)


async def _run_worker_until(
    sessions: SessionFactory, url: URL, done: Any, seconds: float = 30
) -> None:
    worker = Worker(plain_url(url), sessions, Settings(env="test"), {})
    task = asyncio.create_task(run_until_cancelled(worker))
    try:
        for _ in range(int(seconds * 10)):
            if await done():
                return
            await asyncio.sleep(0.1)
        raise AssertionError("the worker did not finish in time")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_job_staged_in_a_rolled_back_transaction_never_exists(
    sessions: SessionFactory,
) -> None:
    marker = uuid.uuid4().hex

    class AbortError(Exception):
        pass

    async def stage_then_fail(session: AsyncSession) -> None:
        await jobs.stage(session, "tests.record", {"marker": marker})
        assert await _queued_in(session, marker) == ["queued"]  # visible inside the transaction
        raise AbortError

    with contextlib.suppress(AbortError):
        await run_in_transaction(sessions, stage_then_fail)
    assert await _queued(sessions, marker) == []


async def _queued_in(session: AsyncSession, marker: str) -> list[str]:
    rows = await session.execute(
        text("SELECT status::text FROM pgqueuer WHERE convert_from(payload, 'UTF8') LIKE :m"),
        {"m": f"%{marker}%"},
    )
    return list(rows.scalars())


async def test_a_committed_job_runs_once(sessions: SessionFactory, database_url: URL) -> None:
    marker = uuid.uuid4().hex
    await run_in_transaction(sessions, lambda s: jobs.stage(s, "tests.record", {"marker": marker}))
    assert await _queued(sessions, marker) == ["queued"]

    async def done() -> bool:
        return marker in SEEN and await _queued(sessions, marker) == []

    await _run_worker_until(sessions, database_url, done)
    assert SEEN[marker] == [0]


async def test_failures_are_retried_then_parked_as_failed(
    sessions: SessionFactory, database_url: URL
) -> None:
    retried, dead = uuid.uuid4().hex, uuid.uuid4().hex

    async def stage(session: AsyncSession) -> None:
        await jobs.stage(session, "tests.record", {"marker": retried, "fail_times": 1})
        await jobs.stage(session, "tests.record", {"marker": dead, "fail_times": 99})

    await run_in_transaction(sessions, stage)

    async def done() -> bool:
        return (
            len(SEEN.get(dead, [])) >= 4
            and await _queued(sessions, dead) == ["failed"]
            and await _queued(sessions, retried) == []
        )

    await _run_worker_until(sessions, database_url, done, seconds=60)
    assert SEEN[retried] == [0, 1]  # failed once, succeeded on the retry
    assert SEEN[dead] == [0, 1, 2, 3]  # three retries, then parked


def test_unknown_jobs_cannot_be_staged() -> None:
    import pytest

    with pytest.raises(ValueError, match="unknown job"):
        asyncio.run(jobs.stage(None, "tests.nope", {}))  # type: ignore[arg-type]


HEALED: set[str] = set()


@jobs.job("tests.flaky_until_healed", max_attempts=1)
async def flaky_until_healed(context: JobContext, payload: dict[str, Any]) -> None:
    if payload["marker"] not in HEALED:
        raise RuntimeError(f"upstream down for {payload['marker']}")
    SEEN.setdefault(payload["marker"], []).append(context.attempt)


async def test_an_operator_lists_inspects_and_retries_a_dead_letter(
    sessions: SessionFactory, database_url: URL, engine: AsyncEngine
) -> None:
    import json
    import os
    import subprocess
    import sys

    from diboas.orchestration import operator

    marker = uuid.uuid4().hex
    await run_in_transaction(
        sessions, lambda s: jobs.stage(s, "tests.flaky_until_healed", {"marker": marker})
    )

    async def dead() -> list[operator.JobView]:
        async with engine.connect() as conn:
            return [j for j in await operator.jobs(conn) if j.payload.get("marker") == marker]

    async def is_dead() -> bool:
        return bool(await dead())

    await _run_worker_until(sessions, database_url, is_dead, seconds=60)
    [failed] = await dead()

    env = {**os.environ, "DIBOAS_DATABASE_URL": plain_url(database_url)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "diboas.cli", "jobs", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    listed = cli("list")
    assert (
        listed.returncode == 0 and f"{failed.id}\ttests.flaky_until_healed\tfailed" in listed.stdout
    )
    shown = json.loads(cli("show", str(failed.id)).stdout)
    assert shown["payload"] == {"marker": marker}
    assert any("upstream down" in (h["error"] or "") for h in shown["history"])

    HEALED.add(marker)
    retried = cli("retry", str(failed.id))
    assert retried.returncode == 0 and "1 job(s) queued again" in retried.stdout
    assert cli("retry", "999999999").returncode != 0

    async def healed() -> bool:
        return marker in SEEN

    await _run_worker_until(sessions, database_url, healed)
    assert SEEN[marker] == [0]  # attempts were reset
    assert await dead() == []
