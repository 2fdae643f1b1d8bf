"""The deposit watcher against a real anvil and PostgreSQL: credits after N confirmations,
once, and never for a transfer a reorganisation removed.

Reorganisations are made with anvil's ``evm_snapshot`` / ``evm_revert`` and re-mining other
blocks. These tests run on an anvil of their own (reverting the shared one would undo other
tests' contracts), and each uses its own chain id in the database so their deposits and
cursors never meet. They commit for real (the watcher runs its own transactions).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking.schemas import TransactionOut
from diboas.banking.service import history
from diboas.banking.service.common import transaction_out
from diboas.chain import repository, wallets
from diboas.chain import watcher as watcher_module
from diboas.chain.anvil import AnvilNode
from diboas.chain.artifacts import load
from diboas.chain.deploy import deploy
from diboas.chain.wallets import Wallet
from diboas.chain.watcher import DepositWatcher, WatchedToken
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.ledger import service as ledger
from diboas.ledger.models import Domain, OwnerType
from diboas.providers.chain_web3 import Web3Chain
from diboas.settings import Settings
from tests.chain.fixtures import all_abis, dev_account, start_anvil
from tests.chain.helpers import mint_usdc, new_user_id, send_usdc

CONFIRMATIONS = 3
SETTINGS = Settings()


@pytest.fixture(scope="module")
def reorg_anvil(chain_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    node = start_anvil(tmp_path_factory.mktemp("anvil-reorg") / "anvil.log")
    yield node
    node.stop()


@dataclass
class World:
    chain: Web3Chain
    minter: LocalAccount
    usdc: str
    sessions: SessionFactory

    async def rpc(self, method: str, *params: object) -> object:
        return await self.chain.rpc(method, params)

    async def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            await self.rpc("evm_mine")

    async def watcher(self, chain_id: int) -> DepositWatcher:
        return DepositWatcher(
            self.chain,
            chain_id=chain_id,
            confirmations=CONFIRMATIONS,
            tokens=[WatchedToken("USDC", self.usdc, 6)],
            start_block=await self.chain.block_number() + 1,
        )

    async def new_user(self, chain_id: int) -> tuple[uuid.UUID, Wallet]:
        user = await new_user_id(self.sessions)
        wallet = await run_in_transaction(
            self.sessions,
            lambda s: wallets.deposit_wallet(s, SETTINGS, chain_id=chain_id, owner_id=user),
        )
        return user, wallet

    async def history(self, user: uuid.UUID) -> list[TransactionOut]:
        """The user's transaction history as the API serialises it."""

        async def read(session: AsyncSession) -> list[TransactionOut]:
            found = await history.page(session, user_id=user, limit=100)
            return [transaction_out(t) for t in found.items]

        return await run_in_transaction(self.sessions, read)

    async def balance(self, user: uuid.UUID, asset: str = "USDC") -> Decimal:
        async def read(session: object) -> Decimal:
            account = await ledger.customer_account(
                session,  # type: ignore[arg-type]
                owner_type=OwnerType.USER,
                owner_id=user,
                domain=Domain.DEFI,
                asset=asset,
            )
            return (await ledger.balance(session, account.id)).balance  # type: ignore[arg-type]

        return await run_in_transaction(self.sessions, read)


@pytest.fixture(scope="module")
async def world_setup(reorg_anvil: AnvilNode) -> AsyncIterator[tuple[Web3Chain, str]]:
    chain = Web3Chain(reorg_anvil.url, timeout=5, receipt_timeout=20, decoder=all_abis())
    usdc = await deploy(chain, dev_account(0), "TestUSDC")
    yield chain, usdc
    await chain.close()


@pytest.fixture
def world(world_setup: tuple[Web3Chain, str], sessions: SessionFactory) -> World:
    chain, usdc = world_setup
    return World(chain, dev_account(0), usdc, sessions)


def new_chain_id() -> int:
    return random.randint(10**6, 10**9)


async def test_deposit_is_credited_only_after_n_confirmations(world: World) -> None:
    chain_id = new_chain_id()
    watcher = await world.watcher(chain_id)
    user, wallet = await world.new_user(chain_id)
    receipt = await mint_usdc(world.chain, world.minter, world.usdc, wallet.address, 25_500_000)

    first = await watcher.scan(world.sessions)  # 1 confirmation
    assert (first.seen, first.credited, first.waiting) == (1, [], 1)
    # In the history at once, pending, with its transaction and confirmations so far.
    [pending] = await world.history(user)
    assert (pending.type, pending.status, pending.domain) == ("crypto_deposit", "pending", "defi")
    assert (pending.currency, pending.amount, pending.fee) == ("USDC", "25.500000", "0.000000")
    assert pending.chain is not None
    assert pending.chain.tx_hash == receipt.tx_hash.lower() and pending.chain.chain_id == chain_id
    assert (pending.chain.confirmations, pending.chain.required_confirmations) == (1, 3)
    assert pending.chain.block_number == receipt.block_number
    await world.mine()
    assert (await watcher.scan(world.sessions)).credited == []  # 2 confirmations
    assert await world.balance(user) == 0
    [still] = await world.history(user)
    assert (still.id, still.status, still.chain.confirmations) == (pending.id, "pending", 2)  # type: ignore[union-attr]
    await world.mine()
    third = await watcher.scan(world.sessions)  # 3 confirmations
    assert len(third.credited) == 1
    [done] = await world.history(user)
    assert (done.id, done.status, done.chain.confirmations) == (pending.id, "completed", 3)  # type: ignore[union-attr]
    assert done.chain.chain_status == "credited" and done.completed_at is not None  # type: ignore[union-attr]
    labels = {"chain": str(chain_id)}
    assert REGISTRY.get_sample_value("diboas_chain_scanned_block", labels) == third.head
    assert (
        REGISTRY.get_sample_value("diboas_chain_deposits_total", {**labels, "outcome": "credited"})
        == 1
    )
    assert REGISTRY.get_sample_value("diboas_chain_deposits_waiting", labels) == 0
    assert await world.balance(user) == Decimal("25.5")
    await world.mine(2)
    again = await watcher.scan(world.sessions)  # the same transfer, seen in the window again
    assert again.credited == []
    assert await world.balance(user) == Decimal("25.5")
    assert [t.id for t in await world.history(user)] == [pending.id]


async def test_ether_sent_to_a_deposit_address_is_credited(world: World) -> None:
    chain_id = new_chain_id()
    watcher = await world.watcher(chain_id)
    user, wallet = await world.new_user(chain_id)
    await world.chain.send(world.minter, to=wallet.address, value=3 * 10**17)
    await world.mine(CONFIRMATIONS - 1)
    report = await watcher.scan(world.sessions)
    assert len(report.credited) == 1
    assert await world.balance(user, "ETH") == Decimal("0.3")
    [row] = await world.history(user)
    assert (row.currency, row.amount, row.status) == ("ETH", "0.300000000000000000", "completed")
    assert row.chain is not None and row.chain.log_index == -1


async def test_transfers_elsewhere_and_zero_transfers_are_ignored(world: World) -> None:
    chain_id = new_chain_id()
    watcher = await world.watcher(chain_id)
    user, wallet = await world.new_user(chain_id)
    await mint_usdc(world.chain, world.minter, world.usdc, Account.create().address, 1_000_000)
    await send_usdc(world.chain, world.minter, world.usdc, wallet.address, 0)  # spam
    await world.mine(CONFIRMATIONS)
    report = await watcher.scan(world.sessions)
    assert (report.seen, report.credited) == (0, [])
    assert await world.balance(user) == 0
    assert await world.history(user) == []


async def test_a_transfer_removed_by_a_reorg_is_never_credited(world: World) -> None:
    chain_id = new_chain_id()
    watcher = await world.watcher(chain_id)
    user, wallet = await world.new_user(chain_id)
    snapshot = await world.rpc("evm_snapshot")
    receipt = await mint_usdc(world.chain, world.minter, world.usdc, wallet.address, 9_000_000)
    assert (await watcher.scan(world.sessions)).seen == 1
    # The chain reorganises below N: the block with the transfer is replaced by others.
    assert await world.rpc("evm_revert", snapshot) is True
    world.chain.forget_nonces()
    await world.chain.send(world.minter, to=Account.create().address, value=1)  # another block
    await world.mine(CONFIRMATIONS)
    assert await world.chain.receipt(receipt.tx_hash) is None
    report = await watcher.scan(world.sessions)
    assert report.credited == []
    assert len(report.orphaned) == 1
    assert await world.balance(user) == 0
    rows = await run_in_transaction(
        world.sessions, lambda s: repository.deposits_for_wallet(s, wallet.id)
    )
    assert [r.status for r in rows] == ["orphaned"]
    # In the history it stays pending (the chain may mine it again), saying it was removed.
    [row] = await world.history(user)
    assert row.status == "pending" and row.chain is not None
    assert (row.chain.chain_status, row.chain.confirmations) == ("orphaned", 0)


async def test_a_transfer_mined_again_after_a_reorg_is_credited_once(world: World) -> None:
    chain_id = new_chain_id()
    watcher = await world.watcher(chain_id)
    user, wallet = await world.new_user(chain_id)
    sender: LocalAccount = Account.create()
    await world.chain.send(world.minter, to=sender.address, value=10**18)
    await mint_usdc(world.chain, world.minter, world.usdc, sender.address, 40_000_000)
    # The same signed transaction, broadcast before and after the reorganisation.
    raw = sender.sign_transaction(
        {
            "chainId": await world.chain.chain_id(),
            "nonce": 0,
            "to": world.usdc,
            "data": world.chain.w3.eth.contract(abi=load("TestUSDC").abi).encode_abi(
                "transfer", [wallet.address, 40_000_000]
            ),
            "gas": 100_000,
            "maxFeePerGas": 10 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "type": 2,
        }
    ).raw_transaction
    snapshot = await world.rpc("evm_snapshot")
    tx_hash = (await world.chain.w3.eth.send_raw_transaction(raw)).to_0x_hex()
    await world.mine(CONFIRMATIONS - 2)  # 2 confirmations: seen, not credited
    first = await watcher.scan(world.sessions)
    assert (first.seen, first.credited) == (1, [])
    first_block = (await world.chain.receipt(tx_hash)).block_hash  # type: ignore[union-attr]
    [before] = await world.history(user)
    assert before.status == "pending" and before.chain.confirmations == 2  # type: ignore[union-attr]

    assert await world.rpc("evm_revert", snapshot) is True
    world.chain.forget_nonces()
    await world.chain.send(world.minter, to=Account.create().address, value=1)  # a new block
    await world.chain.w3.eth.send_raw_transaction(raw)  # mined again, in another block
    await world.mine(CONFIRMATIONS)
    again = await world.chain.receipt(tx_hash)
    assert again is not None
    assert again.block_hash != first_block

    reports = [await watcher.scan(world.sessions) for _ in range(3)]
    assert sum(len(r.credited) for r in reports) == 1
    assert await world.balance(user) == Decimal("40")
    rows = await run_in_transaction(
        world.sessions, lambda s: repository.deposits_for_wallet(s, wallet.id)
    )
    assert [(r.status, r.block_hash) for r in rows] == [("credited", again.block_hash)]
    # One history row, the same one, now completed in the block the transfer is in.
    [after] = await world.history(user)
    assert (after.id, after.status) == (before.id, "completed")
    assert after.chain is not None and after.chain.block_number == again.block_number


async def test_two_watchers_at_once_credit_once(world: World) -> None:
    chain_id = new_chain_id()
    start = await world.chain.block_number() + 1
    users = [await world.new_user(chain_id) for _ in range(3)]
    for _, wallet in users:
        await mint_usdc(world.chain, world.minter, world.usdc, wallet.address, 1_000_000)
    await world.mine(CONFIRMATIONS)
    watchers = [await world.watcher(chain_id) for _ in range(2)]
    for w in watchers:
        w.start_block = start
    reports = await asyncio.gather(*(w.scan(world.sessions) for w in watchers))
    assert sum(len(r.credited) for r in reports) == 3
    for user, _ in users:
        assert await world.balance(user) == Decimal("1")
        assert [t.status for t in await world.history(user)] == ["completed"]


async def test_a_credited_deposit_cannot_be_changed(world: World) -> None:
    chain_id = new_chain_id()
    watcher = await world.watcher(chain_id)
    _, wallet = await world.new_user(chain_id)
    await mint_usdc(world.chain, world.minter, world.usdc, wallet.address, 2_000_000)
    await world.mine(CONFIRMATIONS)
    assert len((await watcher.scan(world.sessions)).credited) == 1

    async def tamper(session: object) -> None:
        await session.execute(  # type: ignore[attr-defined]
            text("UPDATE chain_deposits SET amount = 2000 WHERE wallet_id = :w"),
            {"w": wallet.id},
        )

    with pytest.raises(Exception, match="is credited and cannot change"):
        await run_in_transaction(world.sessions, tamper)


async def test_deposit_keys_are_sealed_and_sign_for_their_address(world: World) -> None:
    chain_id = new_chain_id()
    user, wallet = await world.new_user(chain_id)
    same = await run_in_transaction(
        world.sessions,
        lambda s: wallets.deposit_wallet(s, SETTINGS, chain_id=chain_id, owner_id=user),
    )
    assert same == wallet  # one deposit address per user and chain
    account = await run_in_transaction(
        world.sessions,
        lambda s: wallets.signer(s, SETTINGS, chain_id=chain_id, wallet=wallet),
    )
    assert account.address == wallet.address
    row = await run_in_transaction(
        world.sessions,
        lambda s: repository.find_wallet(
            s, chain_id=chain_id, owner_type="user", owner_id=user, purpose="deposit"
        ),
    )
    assert row is not None
    assert bytes(account.key) not in bytes(row.key_ciphertext)
    # the custodial key really controls the address: it can sweep what arrived
    await world.chain.send(world.minter, to=wallet.address, value=10**17)
    await mint_usdc(world.chain, world.minter, world.usdc, wallet.address, 5_000_000)
    await send_usdc(world.chain, account, world.usdc, world.minter.address, 5_000_000)
    assert await world.chain.token_balance(world.usdc, wallet.address) == 0


async def test_many_deposit_addresses_are_queried_in_batches(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watcher_module, "ADDRESSES_PER_LOG_QUERY", 2)
    chain_id = new_chain_id()
    watcher = await world.watcher(chain_id)
    users = [await world.new_user(chain_id) for _ in range(5)]
    for i, (_, wallet) in enumerate(users):
        await mint_usdc(world.chain, world.minter, world.usdc, wallet.address, (i + 1) * 10**6)
    await world.mine(CONFIRMATIONS)
    report = await watcher.scan(world.sessions)
    assert len(report.credited) == 5
    for i, (user, _) in enumerate(users):
        assert await world.balance(user) == i + 1
