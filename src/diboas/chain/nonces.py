"""A nonce lock shared by every process that signs for a key: a PostgreSQL advisory lock.

Two processes sending from one key at once would both read the node's pending count and sign
the same nonce. Holding ``pg_advisory_xact_lock`` (keyed by the address) while the adapter
chooses the nonce and submits makes them take turns across processes and hosts. The lock
lives in a short transaction of its own on its own connection — it guards only the submission
(one ``eth_getTransactionCount`` and one ``eth_sendRawTransaction``), never a business
transaction — and is released by that transaction's end even if the process dies.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.providers.chain import SignerLock


def lock_key(address: str) -> int:
    """A stable signed 64-bit advisory-lock key for a sending address."""
    digest = hashlib.sha256(b"diboas:chain:nonce:" + address.lower().encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def advisory_signer_lock(engine: AsyncEngine) -> SignerLock:
    """A ``SignerLock`` for ``Web3Chain`` backed by the platform's PostgreSQL."""

    @asynccontextmanager
    async def hold(address: str) -> AsyncIterator[None]:
        async with engine.begin() as connection:
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(address)}
            )
            yield

    def lock(address: str) -> AbstractAsyncContextManager[None]:
        return hold(address)

    return lock
