"""Rotating the encryption key for custody keys: a key sealed under version 1 still signs once
version 2 is current, re-sealing moves every wallet to version 2 (once: a second run does
nothing), and after version 1 is dropped every wallet still signs the same address; a process
without a wallet's key version refuses clearly; a sealed key that is not its row's address is
never re-sealed. On a database of its own (re-sealing walks the whole table)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from eth_account import Account
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from diboas.chain import repository, wallets
from diboas.chain.wallets import Wallet, WalletKeyMismatchError
from diboas.db.engine import SessionFactory, create_session_factory
from diboas.db.transactions import run_in_transaction
from diboas.kit.crypto import KeyRing, KeyUnavailableError
from diboas.ops import keys as key_ops
from diboas.settings import Settings
from tests.kit.rotation import after, before, during, own_database

CHAIN_ID = 31337
# A fixed test key (never funded anywhere): the platform's hot wallet here.
HOT_KEY = "0xac0974bec39a17e36ba4a78aa4d7f4c0f4e9d7fcf1d0c9c0e1c6e7d9f3f1e2a1"
PORT = 2525  # no email is sent here; the settings only need a port


@pytest.fixture
async def db(database_server: str) -> AsyncIterator[tuple[URL, AsyncEngine]]:
    async with own_database(database_server) as database:
        yield database


async def _deposit_wallet(sessions: SessionFactory, settings: Settings) -> Wallet:
    return await run_in_transaction(
        sessions,
        lambda s: wallets.deposit_wallet(s, settings, chain_id=CHAIN_ID, owner_id=uuid.uuid4()),
    )


async def _signs(sessions: SessionFactory, settings: Settings, wallet: Wallet) -> None:
    """The wallet's key opens and signs a transaction recovered to the wallet's address."""
    async with sessions() as session:
        account = await wallets.signer(session, settings, chain_id=CHAIN_ID, wallet=wallet)
    signed = account.sign_transaction(
        {
            "chainId": CHAIN_ID,
            "nonce": 0,
            "to": "0x000000000000000000000000000000000000dEaD",
            "value": 1,
            "gas": 21_000,
            "maxFeePerGas": 2_000_000_000,
            "maxPriorityFeePerGas": 1_000_000_000,
        }
    )
    assert Account.recover_transaction(signed.raw_transaction) == wallet.address


async def _versions(engine: AsyncEngine) -> dict[uuid.UUID, tuple[int, bytes]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, key_version, key_ciphertext FROM chain_wallets"))
        return {row.id: (row.key_version, bytes(row.key_ciphertext)) for row in rows}


async def test_custody_keys_sign_through_a_rotation(db: tuple[URL, AsyncEngine]) -> None:
    _, engine = db
    sessions = create_session_factory(engine)
    old, rotating, new = before(PORT), during(PORT), after(PORT)

    deposits = [await _deposit_wallet(sessions, old) for _ in range(3)]
    hot = await run_in_transaction(
        sessions,
        lambda s: wallets.import_hot_wallet(s, old, chain_id=CHAIN_ID, private_key=HOT_KEY),
    )
    assert hot.address == Account.from_key(HOT_KEY).address
    assert {v for v, _ in (await _versions(engine)).values()} == {1}

    # During: version 1 keys still sign; a new wallet is sealed under version 2.
    for wallet in (*deposits, hot):
        await _signs(sessions, rotating, wallet)
    created = await _deposit_wallet(sessions, rotating)
    await _signs(sessions, rotating, created)
    before_reseal = await _versions(engine)
    assert before_reseal[created.id][0] == 2
    keys = KeyRing.from_settings(rotating)
    async with sessions() as session:
        status = await key_ops.status(session, keys)
    assert status.counts["chain_wallets.key_version"] == {1: 4, 2: 1}
    assert status.pending == 4

    _, chain = await key_ops.reseal(sessions, keys, batch_size=3)
    assert (chain.table, chain.resealed, chain.batches, chain.unavailable) == (
        "chain_wallets",
        4,
        2,
        [],
    )
    resealed = await _versions(engine)
    assert {v for v, _ in resealed.values()} == {2}
    assert resealed[created.id] == before_reseal[created.id]  # already current: untouched
    assert all(resealed[w.id][1] != before_reseal[w.id][1] for w in (*deposits, hot))
    assert [t.resealed for t in await key_ops.reseal(sessions, keys)] == [0, 0]
    assert await _versions(engine) == resealed
    async with sessions() as session:
        status = await key_ops.status(session, keys)
    assert status.counts["chain_wallets.key_version"] == {2: 5}
    assert status.pending == 0 and status.droppable == [1]

    # After: version 1 dropped; every wallet signs as the same address.
    for wallet in (*deposits, hot, created):
        await _signs(sessions, new, wallet)
    # A process that lacks version 2 refuses to open the key, saying which version it lacks.
    with pytest.raises(KeyUnavailableError, match="key version 2 is not configured"):
        await _signs(sessions, old, hot)


async def test_a_key_that_is_not_its_rows_address_is_never_resealed(
    db: tuple[URL, AsyncEngine],
) -> None:
    _, engine = db
    sessions = create_session_factory(engine)
    old = before(PORT)
    wallet = await _deposit_wallet(sessions, old)

    async def plant(session: AsyncSession) -> None:
        # Another key, sealed for this row's id and address (as a bad import would leave it).
        row = await repository.get_wallet(session, wallet.id)
        other = Account.create()
        sealed = KeyRing.from_settings(old).encrypt(
            bytes(other.key), context=f"chain_wallet:{row.id}:{row.address}".encode()
        )
        await repository.reseal_wallet(
            session, wallet_id=row.id, key_ciphertext=sealed.ciphertext, key_version=1
        )

    await run_in_transaction(sessions, plant)
    with pytest.raises(WalletKeyMismatchError, match=str(wallet.id)):
        await key_ops.reseal(sessions, KeyRing.from_settings(during(PORT)))
    assert {v for v, _ in (await _versions(engine)).values()} == {1}
