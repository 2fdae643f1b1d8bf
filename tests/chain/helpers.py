"""Small chain helpers for tests: ABI-encoded calls and funding accounts."""

from __future__ import annotations

import uuid
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy.ext.asyncio import AsyncSession
from web3 import AsyncWeb3

from diboas.chain.artifacts import load
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.identity import repository as users
from diboas.providers.chain import TxReceipt
from diboas.providers.chain_web3 import Web3Chain


def encode(contract: str, function: str, *args: Any) -> str:
    return AsyncWeb3().eth.contract(abi=load(contract).abi).encode_abi(function, list(args))


async def mint_usdc(
    chain: Web3Chain, minter: LocalAccount, usdc: str, to: str, raw_amount: int
) -> TxReceipt:
    return await chain.send(minter, to=usdc, data=encode("TestUSDC", "mint", to, raw_amount))


async def send_usdc(
    chain: Web3Chain, sender: LocalAccount, usdc: str, to: str, raw_amount: int
) -> TxReceipt:
    return await chain.send(sender, to=usdc, data=encode("TestUSDC", "transfer", to, raw_amount))


async def new_user_id(sessions: SessionFactory) -> uuid.UUID:
    """A user row (deposits to a user's address are written to their history)."""

    async def insert(session: AsyncSession) -> uuid.UUID:
        user = await users.insert(
            session,
            email=f"chain-{uuid.uuid4().hex}@example.com",
            full_name="Chain Depositor",
            password_hash="$argon2id$v=19$m=65536,t=3,p=4$never-signs-in",
        )
        return user.id

    return await run_in_transaction(sessions, insert)
