"""Chain RPC: the interface to an Ethereum JSON-RPC node (what Alchemy and Infura serve) and
its web3 adapter.

Amounts at this layer are integers in the token's smallest unit (wei for ether, 10^-6 for
USDC); the callers convert with the asset's scale. Every send estimates gas first (EIP-1559
fees from the latest base fee), so a call that would revert is refused before it costs
anything; a transaction mined with status 0 is the same error with its hash.

Errors: ``ChainUnavailableError`` (the node cannot be reached or timed out: retryable),
``ChainRevertedError`` (``chain_tx_reverted``: the contract refused, with the decoded custom
error or reason), ``ChainTransactionError`` (the node refused the transaction itself, e.g. no
ether for gas). Nonces are allocated per sender under a lock, so concurrent sends from one
custodial key never collide inside a process (one process signs for a key: the worker).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp
import structlog
from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound, Web3RPCError

from diboas.providers.resilience import ProviderError

T = TypeVar("T")
log = structlog.get_logger(__name__)
PROVIDER = "chain"
# keccak("Transfer(address,address,uint256)"): the ERC-20 transfer event's first topic.
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
NATIVE_LOG_INDEX = -1  # ether moved by a transaction's value has no log


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
        self, signer: LocalAccount, *, to: str | None, data: str = "0x", value: int = 0
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


def _hex(value: bytes | str) -> str:
    return HexBytes(value).to_0x_hex()


def _receipt(raw: Any) -> TxReceipt:
    return TxReceipt(
        tx_hash=_hex(raw["transactionHash"]),
        block_number=int(raw["blockNumber"]),
        block_hash=_hex(raw["blockHash"]),
        status=int(raw["status"]),
        gas_used=int(raw["gasUsed"]),
        effective_gas_price=int(raw.get("effectiveGasPrice", 0)),
        logs=tuple(dict(log) for log in raw["logs"]),
        contract_address=raw.get("contractAddress") or None,
    )


def _topic_address(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")


class Web3Chain:
    """The JSON-RPC adapter (web3's async client). Retries are the caller's business
    (``providers.resilience``), so web3's own retry loop is off."""

    def __init__(
        self,
        rpc_url: str,
        *,
        timeout: float = 10.0,
        gas_limit_margin: float = 1.2,
        max_fee_per_gas_cap: int | None = None,
        receipt_timeout: float = 60.0,
        decoder: ErrorDecoder | None = None,
    ) -> None:
        provider = AsyncHTTPProvider(
            rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        self.w3 = AsyncWeb3(provider)
        self.rpc_url = rpc_url
        self.timeout = timeout
        self.gas_limit_margin = gas_limit_margin
        self.max_fee_per_gas_cap = max_fee_per_gas_cap
        self.receipt_timeout = receipt_timeout
        self.decoder = decoder or ErrorDecoder()
        self._nonce_locks: dict[str, asyncio.Lock] = {}
        self._next_nonce: dict[str, int] = {}
        self._chain_id: int | None = None

    async def close(self) -> None:
        await self.w3.provider.disconnect()

    async def _rpc(self, operation: Callable[[], Awaitable[T]]) -> T:
        """One node call, with transport failures turned into a retryable error."""
        try:
            return await asyncio.wait_for(operation(), timeout=self.timeout)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ChainUnavailableError(f"chain node {self.rpc_url} unreachable: {exc!r}") from exc

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await self._rpc(lambda: self.w3.eth.chain_id))
        return self._chain_id

    async def block_number(self) -> int:
        return int(await self._rpc(lambda: self.w3.eth.block_number))

    async def block_hash(self, number: int) -> str | None:
        try:
            block = await self._rpc(lambda: self.w3.eth.get_block(number))
        except Exception as exc:  # web3 raises BlockNotFound past the head
            if isinstance(exc, ChainUnavailableError):
                raise
            return None
        return _hex(block["hash"])

    async def native_balance(self, address: str) -> int:
        checksum = to_checksum_address(address)
        return int(await self._rpc(lambda: self.w3.eth.get_balance(checksum)))

    async def token_balance(self, token: str, address: str) -> int:
        selector = function_signature_to_4byte_selector("balanceOf(address)")
        data = _hex(selector) + _topic_address(address)[2:]
        raw = await self.call(token, data)
        return int.from_bytes(raw[:32], "big") if raw else 0

    async def call(self, to: str, data: str, *, sender: str | None = None) -> bytes:
        """An ``eth_call`` (a read); a revert raises ``ChainRevertedError``."""
        tx: dict[str, Any] = {"to": to_checksum_address(to), "data": data}
        if sender:
            tx["from"] = to_checksum_address(sender)
        try:
            return bytes(await self._rpc(lambda: self.w3.eth.call(tx)))  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise self.decoder.revert(exc.data, exc.message) from exc

    async def fees(self) -> tuple[int, int]:
        """(max fee, priority fee) per gas: twice the latest base fee plus the tip, so the
        transaction stays valid through several blocks of rising base fee."""
        block = await self._rpc(lambda: self.w3.eth.get_block("latest"))
        base = int(block.get("baseFeePerGas", 0))
        tip = int(await self._rpc(lambda: self.w3.eth.max_priority_fee))
        max_fee = 2 * base + tip
        if self.max_fee_per_gas_cap is not None and max_fee > self.max_fee_per_gas_cap:
            raise ChainError(
                f"gas price {max_fee} wei is above the cap {self.max_fee_per_gas_cap}",
                retryable=True,
                code="chain_gas_too_expensive",
            )
        return max_fee, tip

    async def estimate(self, sender: str, *, to: str | None, data: str, value: int = 0) -> GasQuote:
        tx: dict[str, Any] = {"from": to_checksum_address(sender), "data": data, "value": value}
        if to:
            tx["to"] = to_checksum_address(to)
        try:
            gas = int(await self._rpc(lambda: self.w3.eth.estimate_gas(tx)))  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise self.decoder.revert(exc.data, exc.message) from exc
        except Web3RPCError as exc:
            raise ChainTransactionError(f"the node refused to estimate: {exc.message}") from exc
        max_fee, tip = await self.fees()
        return GasQuote(math.ceil(gas * self.gas_limit_margin), max_fee, tip)

    async def send(
        self, signer: LocalAccount, *, to: str | None, data: str = "0x", value: int = 0
    ) -> TxReceipt:
        """Estimate, sign with the next nonce of ``signer``, send, and wait for the receipt."""
        sender = signer.address
        quote = await self.estimate(sender, to=to, data=data, value=value)
        tx: dict[str, Any] = {
            "chainId": await self.chain_id(),
            "data": data,
            "value": value,
            "gas": quote.gas_limit,
            "maxFeePerGas": quote.max_fee_per_gas,
            "maxPriorityFeePerGas": quote.max_priority_fee_per_gas,
            "type": 2,
        }
        if to:
            tx["to"] = to_checksum_address(to)
        tx_hash = await self._sign_and_send(signer, tx)
        receipt = await self.wait_for_receipt(tx_hash)
        if receipt.status != 1:
            raise await self._mined_revert(sender, tx, receipt)
        return receipt

    async def _sign_and_send(self, signer: LocalAccount, tx: dict[str, Any]) -> str:
        # The lock spans nonce choice and submission only: the next send from this key may
        # go out while this one is being mined.
        lock = self._nonce_locks.setdefault(signer.address, asyncio.Lock())
        async with lock:
            for attempt in range(2):
                pending = int(
                    await self._rpc(
                        lambda: self.w3.eth.get_transaction_count(signer.address, "pending")
                    )
                )
                nonce = max(pending, self._next_nonce.get(signer.address, 0))
                raw_tx = signer.sign_transaction({**tx, "nonce": nonce}).raw_transaction
                try:
                    sent = await self._rpc(
                        lambda raw_tx=raw_tx: self.w3.eth.send_raw_transaction(raw_tx)  # type: ignore[misc]
                    )
                except Web3RPCError as exc:
                    message = exc.message or str(exc)
                    if "nonce" in message.lower() and attempt == 0:
                        self._next_nonce.pop(signer.address, None)  # resynchronise with the node
                        continue
                    raise ChainTransactionError(
                        f"the node refused the transaction: {message}"
                    ) from exc
                self._next_nonce[signer.address] = nonce + 1
                return _hex(sent)
        raise ChainTransactionError("no usable nonce after resynchronising")  # pragma: no cover

    async def wait_for_receipt(self, tx_hash: str) -> TxReceipt:
        try:
            raw = await self.w3.eth.wait_for_transaction_receipt(
                HexBytes(tx_hash), timeout=self.receipt_timeout, poll_latency=0.05
            )
        except TimeExhausted as exc:
            raise ChainUnavailableError(f"{tx_hash} was not mined in time") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ChainUnavailableError(f"lost the node while waiting for {tx_hash}") from exc
        return _receipt(raw)

    async def _mined_revert(
        self, sender: str, tx: dict[str, Any], receipt: TxReceipt
    ) -> ChainRevertedError:
        # A receipt has no revert data: replaying the call at its block recovers the reason.
        call = {"from": sender, "to": tx.get("to"), "data": tx["data"], "value": tx["value"]}
        try:
            await self.w3.eth.call(call, receipt.block_number - 1)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            return self.decoder.revert(exc.data, exc.message, receipt.tx_hash)
        except Exception as exc:  # noqa: BLE001 - the reason is a courtesy; the revert is certain
            log.info(
                "no revert reason for a mined revert", tx_hash=receipt.tx_hash, error=repr(exc)
            )
        return ChainRevertedError("reverted when mined", tx_hash=receipt.tx_hash)

    async def receipt(self, tx_hash: str) -> TxReceipt | None:
        try:
            raw = await self._rpc(lambda: self.w3.eth.get_transaction_receipt(HexBytes(tx_hash)))
        except TransactionNotFound:
            return None
        return _receipt(raw)

    async def token_transfers(
        self, tokens: Sequence[str], recipients: Sequence[str], from_block: int, to_block: int
    ) -> list[Transfer]:
        if not tokens or not recipients or from_block > to_block:
            return []
        params: Any = {
            "fromBlock": from_block,
            "toBlock": to_block,
            "address": [to_checksum_address(t) for t in tokens],
            "topics": [TRANSFER_TOPIC, None, [_topic_address(r) for r in recipients]],
        }
        logs = await self._rpc(lambda: self.w3.eth.get_logs(params))
        found = []
        for log in logs:
            topics = log["topics"]
            if len(topics) != 3:  # ERC-721 Transfer has the same topic with 4 entries
                continue
            found.append(
                Transfer(
                    token=to_checksum_address(log["address"]),
                    tx_hash=_hex(log["transactionHash"]),
                    log_index=int(log["logIndex"]),
                    block_number=int(log["blockNumber"]),
                    block_hash=_hex(log["blockHash"]),
                    from_address=to_checksum_address(HexBytes(topics[1])[-20:]),
                    to_address=to_checksum_address(HexBytes(topics[2])[-20:]),
                    value=int.from_bytes(HexBytes(log["data"])[:32], "big"),
                )
            )
        return found

    async def native_transfers(
        self, recipients: Sequence[str], from_block: int, to_block: int
    ) -> list[Transfer]:
        """Ether sent by transactions straight to a recipient (internal transfers made by
        contracts need a tracing node and are not seen here)."""
        wanted = {r.lower() for r in recipients}
        found = []
        for number in range(from_block, to_block + 1):
            block: Any = await self._rpc(lambda n=number: self.w3.eth.get_block(n, True))  # type: ignore[misc]
            for tx in block["transactions"]:
                to = tx.get("to")
                if to and to.lower() in wanted and int(tx["value"]) > 0:
                    found.append(
                        Transfer(
                            token=None,
                            tx_hash=_hex(tx["hash"]),
                            log_index=NATIVE_LOG_INDEX,
                            block_number=number,
                            block_hash=_hex(block["hash"]),
                            from_address=to_checksum_address(tx["from"]),
                            to_address=to_checksum_address(to),
                            value=int(tx["value"]),
                        )
                    )
        return found

    async def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """A raw JSON-RPC call (node-specific methods such as anvil's ``evm_mine``)."""
        response = await self._rpc(lambda: self.w3.provider.make_request(method, list(params)))
        if "error" in response:
            raise ChainError(f"{method}: {response['error']}")
        return response.get("result")

    async def health(self) -> bool:
        await self.block_number()
        return True
