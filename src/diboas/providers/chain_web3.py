"""The chain RPC adapter over web3's async client (any Ethereum JSON-RPC node: Alchemy,
Infura, geth, anvil). See ``providers.chain`` for the interface and its errors.

Nonces are allocated per sender under a lock, so concurrent sends from one custodial key never
collide: an asyncio lock inside the process and, when given a ``SignerLock`` (the PostgreSQL
advisory lock of ``chain.nonces``), one across processes. A nonce the node says is used
(another client spent it) makes the adapter resynchronise from the node once.
Retries are the caller's business (``providers.resilience``), so web3's own retry loop is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import aiohttp
import structlog
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import ContractLogicError, TimeExhausted, TransactionNotFound, Web3RPCError

from diboas.chain.artifacts import project_abis
from diboas.providers.chain import (
    NATIVE_LOG_INDEX,
    TRANSFER_TOPIC,
    ChainError,
    ChainPendingError,
    ChainRevertedError,
    ChainTransactionError,
    ChainUnavailableError,
    ErrorDecoder,
    GasQuote,
    SignerLock,
    Transfer,
    TxReceipt,
)
from diboas.settings import Settings

T = TypeVar("T")
log = structlog.get_logger(__name__)


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
    """The JSON-RPC adapter (implements ``providers.chain.ChainRpc``)."""

    @classmethod
    def from_settings(
        cls, settings: Settings, *, signer_lock: SignerLock | None = None
    ) -> Web3Chain | None:
        """The configured node, or None when no chain is configured (``DIBOAS_CHAIN_RPC_URL``)."""
        if not settings.chain_rpc_url.strip():
            return None
        cap = settings.chain_max_fee_per_gas_gwei
        return cls(
            settings.chain_rpc_url.strip(),
            timeout=settings.chain_rpc_timeout_seconds,
            gas_limit_margin=settings.chain_gas_limit_margin,
            max_fee_per_gas_cap=None if cap is None else int(cap * 10**9),
            decoder=ErrorDecoder(project_abis()),
            signer_lock=signer_lock,
        )

    def __init__(
        self,
        rpc_url: str,
        *,
        timeout: float = 10.0,
        gas_limit_margin: Decimal = Decimal("1.2"),
        max_fee_per_gas_cap: int | None = None,
        receipt_timeout: float = 60.0,
        decoder: ErrorDecoder | None = None,
        signer_lock: SignerLock | None = None,
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
        self.signer_lock = signer_lock
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

    async def code_at(self, address: str) -> bytes:
        """The contract code at ``address`` (empty for an account without code)."""
        checksum = to_checksum_address(address)
        return bytes(await self._rpc(lambda: self.w3.eth.get_code(checksum)))

    async def token_balance(self, token: str, address: str) -> int:
        selector = function_signature_to_4byte_selector("balanceOf(address)")
        data = _hex(selector) + _topic_address(address)[2:]
        raw = await self.call(token, data)
        return int.from_bytes(raw[:32], "big") if raw else 0

    async def call(
        self,
        to: str,
        data: str,
        *,
        sender: str | None = None,
        state_override: dict[str, Any] | None = None,
    ) -> bytes:
        """An ``eth_call`` (a read); a revert raises ``ChainRevertedError``."""
        tx: dict[str, Any] = {"to": to_checksum_address(to), "data": data}
        if sender:
            tx["from"] = to_checksum_address(sender)
        try:
            return bytes(
                await self._rpc(lambda: self.w3.eth.call(tx, "latest", state_override))  # type: ignore[arg-type]
            )
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

    async def estimate(
        self,
        sender: str,
        *,
        to: str | None,
        data: str,
        value: int = 0,
        state_override: dict[str, Any] | None = None,
        extra_gas: int = 0,
    ) -> GasQuote:
        """Gas for a transaction against the latest mined state (every step waits for the
        previous one's receipt), or that state with ``state_override`` applied (what a
        transaction would cost after an earlier step of the same operation). ``extra_gas`` is
        added to the limit for work the estimate cannot see (it runs in the latest block's
        context, so time-dependent writes of the next block are missing from it)."""
        tx: dict[str, Any] = {"from": to_checksum_address(sender), "data": data, "value": value}
        if to:
            tx["to"] = to_checksum_address(to)
        try:
            gas = int(
                await self._rpc(
                    lambda: self.w3.eth.estimate_gas(tx, "latest", state_override)  # type: ignore[arg-type]
                )
            )
        except ContractLogicError as exc:
            raise self.decoder.revert(exc.data, exc.message) from exc
        except Web3RPCError as exc:
            raise ChainTransactionError(f"the node refused to estimate: {exc.message}") from exc
        max_fee, tip = await self.fees()
        limit = math.ceil(Decimal(gas) * self.gas_limit_margin) + extra_gas
        return GasQuote(limit, max_fee, tip)

    async def storage_read_by(self, sender: str, *, to: str, data: str) -> dict[str, list[str]]:
        """The storage slots a call reads, by contract (``eth_createAccessList``)."""
        tx = {"from": to_checksum_address(sender), "to": to_checksum_address(to), "data": data}
        result = await self.rpc("eth_createAccessList", [tx, "latest"])
        return {
            to_checksum_address(item["address"]): list(item["storageKeys"])
            for item in result["accessList"]
        }

    async def storage_at(self, address: str, slot: str) -> int:
        checksum = to_checksum_address(address)
        raw = await self._rpc(lambda: self.w3.eth.get_storage_at(checksum, int(slot, 16)))
        return int.from_bytes(raw, "big")

    async def send(
        self,
        signer: LocalAccount,
        *,
        to: str | None,
        data: str = "0x",
        value: int = 0,
        extra_gas: int = 0,
    ) -> TxReceipt:
        """Estimate (see ``estimate`` for ``extra_gas``), sign with the next nonce of
        ``signer``, send, and wait for the receipt."""
        sender = signer.address
        quote = await self.estimate(sender, to=to, data=data, value=value, extra_gas=extra_gas)
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
        tx_hash, raw_tx, nonce = await self._sign_and_send(signer, tx)
        try:
            receipt = await self.wait_for_receipt(tx_hash)
        except ChainUnavailableError as exc:
            # Not mined (yet): the next send asks the node rather than trusting the cache.
            self.forget_nonces(sender)
            raise ChainPendingError(
                f"{tx_hash} was sent and its outcome is not known yet: {exc}",
                tx_hash=tx_hash,
                raw_transaction=raw_tx,
                sender=sender,
                nonce=nonce,
            ) from exc
        if receipt.status != 1:
            raise await self._mined_revert(sender, tx, receipt)
        return receipt

    def forget_nonces(self, address: str | None = None) -> None:
        """Drop cached nonces (all, or one key's) so the next send asks the node: after a
        reorganisation, or a transaction that was never mined, the cache may run ahead."""
        if address is None:
            self._next_nonce.clear()
        else:
            self._next_nonce.pop(address, None)

    @contextlib.asynccontextmanager
    async def _shared_lock(self, address: str) -> AsyncIterator[None]:
        if self.signer_lock is None:
            yield
            return
        async with self.signer_lock(address):
            # Another process may have sent from this key: the node's count is the truth.
            self._next_nonce.pop(address, None)
            yield

    async def _sign_and_send(
        self, signer: LocalAccount, tx: dict[str, Any]
    ) -> tuple[str, str, int]:
        """The transaction's hash, its signed bytes (hex) and its nonce, once the node took it."""
        # The lock spans nonce choice and submission only: the next send from this key may
        # go out while this one is being mined.
        lock = self._nonce_locks.setdefault(signer.address, asyncio.Lock())
        async with lock, self._shared_lock(signer.address):
            for attempt in range(2):
                pending = int(
                    await self._rpc(
                        lambda: self.w3.eth.get_transaction_count(signer.address, "pending")
                    )
                )
                nonce = max(pending, self._next_nonce.get(signer.address, 0))
                signed = signer.sign_transaction({**tx, "nonce": nonce})
                raw_tx, tx_hash = signed.raw_transaction, _hex(signed.hash)
                try:
                    sent = await asyncio.wait_for(
                        self.w3.eth.send_raw_transaction(raw_tx), timeout=self.timeout
                    )
                except aiohttp.ClientConnectorError as exc:  # never reached the node
                    raise ChainUnavailableError(f"chain node {self.rpc_url} unreachable") from exc
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    # The request may have reached the node before the connection failed.
                    raise ChainPendingError(
                        f"{tx_hash} may have been submitted: {exc!r}",
                        tx_hash=tx_hash,
                        raw_transaction=_hex(raw_tx),
                        sender=signer.address,
                        nonce=nonce,
                    ) from exc
                except Web3RPCError as exc:
                    message = exc.message or str(exc)
                    if "nonce" in message.lower() and attempt == 0:
                        self._next_nonce.pop(signer.address, None)  # resynchronise with the node
                        continue
                    raise ChainTransactionError(
                        f"the node refused the transaction: {message}"
                    ) from exc
                self._next_nonce[signer.address] = nonce + 1
                return _hex(sent), _hex(raw_tx), nonce
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
        # A receipt has no revert data: replaying the call on its block's state (where the
        # reverted transaction changed nothing) recovers the reason.
        call = {"from": sender, "to": tx.get("to"), "data": tx["data"], "value": tx["value"]}
        try:
            await self.w3.eth.call(call, receipt.block_number)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            return self.decoder.revert(exc.data, exc.message, receipt.tx_hash)
        except Exception as exc:  # noqa: BLE001 - the reason is a courtesy; the revert is certain
            log.info(
                "no revert reason for a mined revert", tx_hash=receipt.tx_hash, error=repr(exc)
            )
            return ChainRevertedError("reverted when mined", tx_hash=receipt.tx_hash)
        if receipt.gas_used * 10 >= int(tx["gas"]) * 9:
            # The same call succeeds when gas is not limited, and this one used (nearly) all
            # of its limit — a nested call keeps back 1/64 — so it ran out of gas.
            return ChainRevertedError(
                f"out of gas ({receipt.gas_used} of {tx['gas']})",
                error_name="OutOfGas",
                tx_hash=receipt.tx_hash,
            )
        return ChainRevertedError("reverted when mined", tx_hash=receipt.tx_hash)

    async def transaction_known(self, tx_hash: str) -> bool:
        """Whether the node has the transaction (mined, or waiting in its pool)."""
        try:
            found = await self._rpc(lambda: self.w3.eth.get_transaction(HexBytes(tx_hash)))
        except TransactionNotFound:
            return False
        return found is not None

    async def confirmed_nonce(self, address: str) -> int:
        """How many transactions of ``address`` are mined: every nonce below it is used."""
        checksum = to_checksum_address(address)
        return int(await self._rpc(lambda: self.w3.eth.get_transaction_count(checksum, "latest")))

    async def send_raw(self, raw_transaction: str) -> None:
        """Send an already signed transaction again (the same hash: it can be mined once at
        most). A node that has it already says so, which is as good."""
        try:
            await self._rpc(lambda: self.w3.eth.send_raw_transaction(HexBytes(raw_transaction)))
        except Web3RPCError as exc:
            message = (exc.message or str(exc)).lower()
            if "already known" not in message and "already imported" not in message:
                raise ChainTransactionError(f"the node refused the transaction: {message}") from exc

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
