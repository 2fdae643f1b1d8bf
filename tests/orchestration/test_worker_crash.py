"""The worker process is killed (SIGKILL) in the middle of a card deposit's job — after
Stripe charged, before the answer reached it — and another worker finishes the job: one
charge, one credit, the ledger intact."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.db.engine import create_engine, create_session_factory
from diboas.db.urls import plain_url
from diboas.orchestration.worker import Worker, run_until_cancelled
from tests.api.conftest import _client
from tests.orchestration.conftest import (
    WEBHOOK_SECRET,
    approved_user,
    assert_ledger_clean,
    card_deposit,
    charges_for,
    fault_settings,
    final_state,
    states,
    usd_available,
)
from tests.orchestration.fault_proxy import Fault, FaultProxy
from tests.providers.conftest import LOCALSTRIPE_API_KEY

CONFIRM = "POST /v1/payment_intents/pi_"


def _worker_process(
    database_url: str, proxy: FaultProxy, data_dir: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DIBOAS_ENV": "test",
        "DIBOAS_DATABASE_URL": database_url,
        "DIBOAS_DATA_DIR": str(data_dir),
        "DIBOAS_STRIPE_API_KEY": LOCALSTRIPE_API_KEY,
        "DIBOAS_STRIPE_API_BASE": proxy.url,
        "DIBOAS_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        # Long enough that the worker is still waiting for Stripe's answer when it is killed.
        "DIBOAS_STRIPE_TIMEOUT_SECONDS": "120",
    }
    diboas = Path(sys.executable).with_name("diboas")
    return subprocess.Popen(
        [str(diboas), "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def test_a_worker_killed_mid_job_loses_nothing_and_doubles_nothing(
    database_url: URL,
    engine: AsyncEngine,
    mailbox: tuple[object, int],
    proxy: FaultProxy,
    localstripe: str,
    tmp_path: Path,
) -> None:
    proxy.slow_seconds = 300  # the first confirm's answer is held back until the worker dies
    proxy.plan(CONFIRM, Fault.SLOW_AFTER_SUCCESS)
    url = plain_url(database_url)
    api_only = fault_settings(mailbox[1], proxy, run_worker_in_process=False)
    app = create_app(api_only, database_url=url)
    async for client in _client(app):
        account = await approved_user(client, engine)
        doomed = _worker_process(url, proxy, tmp_path)
        try:
            deposit = await card_deposit(client, account, "75.00")
            for _ in range(600):  # the doomed worker has asked Stripe to confirm
                if any(line.startswith(CONFIRM) for line, _ in proxy.seen):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the worker never reached Stripe")
        finally:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=30)
        assert doomed.returncode == -signal.SIGKILL

        # A new worker notices the dead one's job by its stale heartbeat and runs it again.
        rescuer = fault_settings(
            mailbox[1], proxy, job_heartbeat_timeout_seconds=1.0, data_dir=str(tmp_path)
        )
        rescue_engine = create_engine(url, pool_size=4)
        worker = Worker(url, create_session_factory(rescue_engine), rescuer, {})
        task = asyncio.create_task(run_until_cancelled(worker))
        try:
            done = await final_state(client, account, str(deposit["id"]), seconds=60)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await rescue_engine.dispose()

        assert done["status"] == "completed", done
        assert states(done).count("provider_requested") == 2  # the job ran twice
        charges = await charges_for(localstripe, str(deposit["id"]))
        assert [c["status"] for c in charges] == ["succeeded"]  # Stripe charged once
        assert await usd_available(client, account) == Decimal("75.00") - Decimal(deposit["fee"])
        await assert_ledger_clean(engine)
