"""`diboas keys status` and `diboas keys reseal` as an operator runs them (the installed
command, in a process of its own, configured by the environment)."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

from diboas.chain import wallets
from diboas.db.engine import create_session_factory
from diboas.db.transactions import run_in_transaction
from diboas.db.urls import plain_url
from tests.kit.rotation import NEW_SECRET, OLD_SECRET, before, own_database

DIBOAS = str(Path(sys.executable).with_name("diboas"))


async def _diboas(url: str, *args: str, rotated: bool) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIBOAS_")}
    env.update({"DIBOAS_DATABASE_URL": url, "DIBOAS_ENV": "test", "DIBOAS_LOG_LEVEL": "WARNING"})
    if rotated:
        env.update(
            {
                "DIBOAS_ENCRYPTION_KEY": NEW_SECRET,
                "DIBOAS_ENCRYPTION_KEY_VERSION": "2",
                "DIBOAS_ENCRYPTION_KEYS_PREVIOUS": f'{{"1": "{OLD_SECRET}"}}',
            }
        )
    process = await asyncio.create_subprocess_exec(
        DIBOAS,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_status_then_reseal_then_status(database_server: str) -> None:
    async with own_database(database_server) as (url, engine):
        sessions = create_session_factory(engine)
        for _ in range(2):
            await run_in_transaction(
                sessions,
                lambda s: wallets.deposit_wallet(
                    s, before(25), chain_id=31337, owner_id=uuid.uuid4()
                ),
            )
        database = plain_url(url)

        code, out = await _diboas(database, "keys", "status", rotated=True)
        assert code == 0, out
        assert "current key version: 2; configured: 1, 2" in out
        assert "chain_wallets.key_version: v1: 2" in out
        assert "bank_accounts.key_version: no rows" in out
        assert "2 row(s) not on v2: run `diboas keys reseal`" in out

        code, out = await _diboas(database, "keys", "reseal", "--batch-size", "1", rotated=True)
        assert code == 0, out
        assert "chain_wallets: 2 row(s) re-sealed in 3 batch(es)" in out
        assert "bank_accounts: 0 row(s) re-sealed in 1 batch(es)" in out
        assert "v1: no rows use it — it can be dropped" in out
        assert "every row is on v2" in out

        # Run again: nothing to do.
        code, out = await _diboas(database, "keys", "reseal", rotated=True)
        assert code == 0 and "chain_wallets: 0 row(s) re-sealed" in out, out

        # A process configured without version 2 is told, and fails.
        code, out = await _diboas(database, "keys", "status", rotated=False)
        assert code == 1, out
        assert "chain_wallets.key_version: v2: 2" in out
        assert "NOT CONFIGURED but in use: v2" in out
