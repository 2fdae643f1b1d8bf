"""A deployed contract, by its ABI: encoded reads and sends through the web3 chain adapter,
and the decoded events of a receipt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes

from diboas.providers.chain import ChainError, TxReceipt
from diboas.providers.chain_web3 import Web3Chain


class Contract:
    """One deployed contract: ABI-encoded reads and sends through a ``Web3Chain``."""

    def __init__(self, chain: Web3Chain, address: str, abi: Sequence[dict[str, Any]]) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self.abi = list(abi)
        self._contract = chain.w3.eth.contract(address=self.address, abi=self.abi)

    def encode(self, function: str, *args: Any) -> str:
        return str(self._contract.encode_abi(function, list(args)))

    def _output_types(self, function: str, arity: int) -> list[str]:
        for item in self.abi:
            if (
                item.get("type") == "function"
                and item["name"] == function
                and len(item.get("inputs", [])) == arity
            ):
                return [o["type"] for o in item.get("outputs", [])]
        raise KeyError(f"{function}/{arity} is not in the ABI")

    async def read(self, function: str, *args: Any) -> Any:
        """The function's result (a tuple when it returns several values)."""
        raw = await self.chain.call(self.address, self.encode(function, *args))
        types = self._output_types(function, len(args))
        if types and not raw:
            # An address without code answers every call with nothing (a wrong address, or a
            # chain the contract was never deployed to).
            raise ChainError(
                f"no contract answered {function} at {self.address}", code="chain_no_contract"
            )
        values = abi_decode(types, raw)
        return values[0] if len(values) == 1 else values

    async def send(
        self, signer: LocalAccount, function: str, *args: Any, value: int = 0
    ) -> TxReceipt:
        return await self.chain.send(
            signer, to=self.address, data=self.encode(function, *args), value=value
        )

    def events(self, receipt: TxReceipt, event: str) -> list[dict[str, Any]]:
        """The decoded arguments of this contract's ``event`` logs in ``receipt``."""
        decoder = self._contract.events[event]()
        return [
            dict(decoder.process_log(log)["args"])
            for log in receipt.logs
            if to_checksum_address(log["address"]) == self.address
            and HexBytes(log["topics"][0]) == HexBytes(decoder.topic)
        ]
