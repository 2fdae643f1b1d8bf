"""Small chain helpers for tests: ABI-encoded calls and funding accounts."""

from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3

from diboas.chain.artifacts import load
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
