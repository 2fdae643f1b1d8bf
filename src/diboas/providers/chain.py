"""Chain RPC: the interface to an Ethereum JSON-RPC node (what Alchemy and Infura serve), the
records it returns and its errors. The web3 adapter is ``providers.chain_web3.Web3Chain``.

Amounts at this layer are integers in the token's smallest unit (wei for ether, 10^-6 for
USDC); callers convert with the asset's scale. Every send estimates gas first (EIP-1559
fees from the latest base fee), so a call that would revert is refused before it costs
anything; a transaction mined with status 0 is the same error with its hash.

Errors (all ``ProviderError``, provider ``chain``):

- ``ChainUnavailableError`` ``chain_unavailable``: the node cannot be reached or timed out —
  retryable;
- ``ChainRevertedError`` ``chain_tx_reverted``: the contract refused, with the decoded custom
  error (``error_name``, ``args_decoded``) or revert reason — not retryable;
- ``ChainTransactionError`` ``chain_tx_refused``: the node refused the transaction itself (no
  ether for gas, a bad nonce) — not retryable;
- ``ChainPendingError`` ``chain_tx_pending``: submitted (or maybe: the node went away during
  submission) but not known to be mined — wait for its hash, never send again;
- ``chain_gas_too_expensive`` (a ``ChainError``): fees above the configured cap — retryable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from hexbytes import HexBytes

from diboas.providers.resilience import ProviderError

PROVIDER = "chain"
# keccak("Transfer(address,address,uint256)"): the ERC-20 transfer event's first topic.
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
NATIVE_LOG_INDEX = -1  # ether moved by a transaction's value has no log


# A lock per sending address shared by every process that signs for it (e.g. a PostgreSQL
# advisory lock, ``chain.nonces``): held while a nonce is chosen and the transaction submitted.
SignerLock = Callable[[str], AbstractAsyncContextManager[None]]


class ChainError(ProviderError):
    """Something the chain or its node refused."""

    def __init__(self, message: str, *, retryable: bool = False, code: str = "chain_error") -> None:
        super().__init__(message, provider=PROVIDER, retryable=retryable, code=code)


class ChainUnavailableError(ChainError):
    """The node could not be reached or did not answer in time (try again later)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, code="chain_unavailable")


class ChainRevertedError(ChainError):
    """The contract reverted: at gas estimation (nothing sent) or when mined (``tx_hash``)."""

    def __init__(
        self, reason: str, *, error_name: str = "", args: Sequence[Any] = (), tx_hash: str = ""
    ) -> None:
        super().__init__(f"transaction reverted: {reason}", code="chain_tx_reverted")
        self.reason = reason
        self.error_name = error_name
        self.args_decoded = tuple(args)
        self.tx_hash = tx_hash


class ChainPendingError(ChainError):
    """A transaction was submitted (or may have been) and its outcome is not known: wait for
    ``tx_hash``'s receipt (``wait_for_receipt``). Not retryable — sending again would move the
    money twice."""

    def __init__(
        self,
        message: str,
        *,
        tx_hash: str,
        raw_transaction: str | None = None,
        sender: str | None = None,
        nonce: int | None = None,
    ) -> None:
        super().__init__(message, code="chain_tx_pending")
        self.tx_hash = tx_hash
        # The signed transaction and its nonce, when known: enough to look its fate up later
        # and to send the very same transaction again if the node never received it.
        self.raw_transaction = raw_transaction
        self.sender = sender
        self.nonce = nonce


class ChainTransactionError(ChainError):
    """The node refused the transaction (insufficient ether for gas, a bad nonce, fee cap)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="chain_tx_refused")


@dataclass(frozen=True, slots=True)
class GasQuote:
    """What a transaction may cost: gas limit and EIP-1559 fees, in wei."""

    gas_limit: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int

    @property
    def max_cost_wei(self) -> int:
        return self.gas_limit * self.max_fee_per_gas

    def then(self, other: GasQuote) -> GasQuote:
        """Two transactions one after the other: their gas added, at the higher fees."""
        return GasQuote(
            self.gas_limit + other.gas_limit,
            max(self.max_fee_per_gas, other.max_fee_per_gas),
            max(self.max_priority_fee_per_gas, other.max_priority_fee_per_gas),
        )


@dataclass(frozen=True, slots=True)
class TxReceipt:
    """A mined transaction (status 1: every receipt returned by ``send`` succeeded)."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    effective_gas_price: int
    logs: tuple[dict[str, Any], ...]
    contract_address: str | None = None  # set when the transaction created a contract

    @property
    def fee_wei(self) -> int:
        return self.gas_used * self.effective_gas_price


@dataclass(frozen=True, slots=True)
class Transfer:
    """Value that arrived at an address: an ERC-20 Transfer log, or ether (``token`` None)."""

    token: str | None
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    from_address: str
    to_address: str
    value: int


class ChainRpc(Protocol):
    """An Ethereum JSON-RPC node, as the platform uses it."""

    async def chain_id(self) -> int: ...
    async def block_number(self) -> int: ...
    async def block_hash(self, number: int) -> str | None: ...
    async def native_balance(self, address: str) -> int: ...
    async def token_balance(self, token: str, address: str) -> int: ...
    async def estimate(self, sender: str, *, to: str, data: str, value: int = 0) -> GasQuote: ...
    async def send(
        self,
        signer: LocalAccount,
        *,
        to: str | None,
        data: str = "0x",
        value: int = 0,
        extra_gas: int = 0,
    ) -> TxReceipt: ...
    async def receipt(self, tx_hash: str) -> TxReceipt | None: ...
    async def token_transfers(
        self, tokens: Sequence[str], recipients: Sequence[str], from_block: int, to_block: int
    ) -> list[Transfer]: ...
    async def native_transfers(
        self, recipients: Sequence[str], from_block: int, to_block: int
    ) -> list[Transfer]: ...


class ErrorDecoder:
    """Custom errors by selector, from every ABI the platform talks to, plus Error/Panic."""

    def __init__(self, abis: Sequence[Sequence[dict[str, Any]]] = ()) -> None:
        self._errors: dict[bytes, tuple[str, list[str]]] = {
            bytes.fromhex("08c379a0"): ("Error", ["string"]),
            bytes.fromhex("4e487b71"): ("Panic", ["uint256"]),
        }
        for abi in abis:
            for item in abi:
                if item.get("type") == "error":
                    types = [i["type"] for i in item.get("inputs", [])]
                    signature = f"{item['name']}({','.join(types)})"
                    self._errors[function_signature_to_4byte_selector(signature)] = (
                        item["name"],
                        types,
                    )

    def revert(self, data: object, fallback: str | None, tx_hash: str = "") -> ChainRevertedError:
        """The error for revert ``data`` (web3's ``ContractLogicError.data``)."""
        raw = HexBytes(data) if isinstance(data, str | bytes) and data else b""
        known = self._errors.get(bytes(raw[:4]))
        if known is None:
            return ChainRevertedError(fallback or "no reason given", tx_hash=tx_hash)
        name, types = known
        try:
            values = abi_decode(types, bytes(raw[4:]))
        except Exception:  # noqa: BLE001 - undecodable data still names the error
            values = ()
        if name == "Error" and values:
            return ChainRevertedError(str(values[0]), error_name=name, args=values, tx_hash=tx_hash)
        shown = ", ".join(str(v) for v in values)
        return ChainRevertedError(f"{name}({shown})", error_name=name, args=values, tx_hash=tx_hash)
