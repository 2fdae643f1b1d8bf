"""The deposit watcher: finds transfers to custodial deposit addresses and credits their
owners' ledger accounts once they have enough confirmations.

One scan:

1. reads the head and scans from the cursor — always including the last ``confirmations``
   blocks scanned before again, the part a reorganisation may have rewritten — for ERC-20
   Transfer logs of the watched tokens (and, optionally, ether sent straight) to deposit
   addresses, each noted as 'seen' by (chain, tx hash, log index);
2. for every 'seen' deposit whose block has ``confirmations`` confirmations (its own block
   counts as one), fetches the transaction's receipt again from the node. A receipt that is
   missing means the transaction vanished in a reorganisation: the deposit is 'orphaned' (and
   back to 'seen' if mined again). A receipt in another block waits for the next scan, which
   records the new block. Otherwise the log must still be there, unchanged;
3. credits in one transaction per deposit: the row is locked and checked still 'seen', the
   ledger entry (platform external account → the owner's account) carries the deposit as its
   reference, and the row becomes 'credited' (final: a trigger refuses any change after).

Each step also keeps the user's ``crypto_deposit`` history row (``watcher_history``): pending
with its confirmations while it waits, completed when credited, one row per deposit however
often a reorganisation moves it.

Delivery is idempotent by (chain, tx hash, log index) and the row lock, so two watchers, or a
scan run twice, credit once. A reorganisation deeper than ``confirmations`` is outside what
this guards (choose the setting by the chain's finality).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import structlog
from hexbytes import HexBytes
from prometheus_client import Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.chain import repository
from diboas.chain import watcher_history as history
from diboas.chain.repository import DepositRow
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.ledger import service as ledger
from diboas.ledger.models import AccountKind, Domain, OwnerType
from diboas.providers.chain import TRANSFER_TOPIC, ChainRpc, Transfer, TxReceipt

log = structlog.get_logger(__name__)
CURSOR = "deposits"
ADDRESSES_PER_LOG_QUERY = 200

CHAIN_SCANNED_BLOCK = Gauge(
    "diboas_chain_scanned_block", "The head block the deposit watcher last scanned.", ["chain"]
)
CHAIN_DEPOSITS = Counter(
    "diboas_chain_deposits_total",
    "Chain deposits by outcome (seen, credited, orphaned).",
    ["chain", "outcome"],
)
CHAIN_DEPOSITS_WAITING = Gauge(
    "diboas_chain_deposits_waiting",
    "Deposits seen and not credited yet (too few confirmations, or a block in question).",
    ["chain"],
)


@dataclass(frozen=True, slots=True)
class WatchedToken:
    """An ERC-20 credited as ``asset`` (its on-chain decimals must equal the asset's scale)."""

    asset: str
    address: str
    scale: int


@dataclass
class ScanReport:
    """What one scan did."""

    head: int
    scanned: tuple[int, int] | None = None
    seen: int = 0
    credited: list[int] = field(default_factory=list)
    orphaned: list[int] = field(default_factory=list)
    waiting: int = 0


class DepositWatcher:
    """Scans one chain for deposits and credits them (see the module docstring)."""

    def __init__(
        self,
        chain: ChainRpc,
        *,
        chain_id: int,
        confirmations: int,
        tokens: Sequence[WatchedToken] = (),
        native_scale: int | None = 18,
        start_block: int = 0,
        batch_blocks: int = 500,
        domain: Domain = Domain.DEFI,
    ) -> None:
        if confirmations < 1:
            raise ValueError("a deposit needs at least one confirmation")
        self.chain = chain
        self.chain_id = chain_id
        self.confirmations = confirmations
        self.tokens = {t.address.lower(): t for t in tokens}
        self.native_scale = native_scale  # None: ether sent straight is not watched
        self.start_block = start_block
        self.batch_blocks = batch_blocks
        self.domain = domain

    async def scan(self, sessions: SessionFactory) -> ScanReport:
        head = await self.chain.block_number()
        report = ScanReport(head=head)
        last = await run_in_transaction(
            sessions, lambda s: repository.cursor(s, self.chain_id, CURSOR)
        )
        # The last N blocks scanned before are scanned again: a reorganisation shallower than
        # N may have replaced them (and moved a transfer into another block).
        depth = self.confirmations - 1
        first = self.start_block if last is None else max(self.start_block, min(last, head) - depth)
        for low in range(first, head + 1, self.batch_blocks):
            high = min(low + self.batch_blocks - 1, head)
            report.seen += await self._scan_range(sessions, low, high)
        if first <= head:
            report.scanned = (first, head)
        await run_in_transaction(
            sessions, lambda s: repository.set_cursor(s, self.chain_id, CURSOR, head)
        )
        await self._settle(sessions, head, report)
        chain = str(self.chain_id)
        CHAIN_SCANNED_BLOCK.labels(chain).set(head)
        CHAIN_DEPOSITS.labels(chain, "seen").inc(report.seen)
        CHAIN_DEPOSITS.labels(chain, "credited").inc(len(report.credited))
        CHAIN_DEPOSITS.labels(chain, "orphaned").inc(len(report.orphaned))
        CHAIN_DEPOSITS_WAITING.labels(chain).set(report.waiting)
        return report

    async def _scan_range(self, sessions: SessionFactory, low: int, high: int) -> int:
        wallets = await run_in_transaction(
            sessions, lambda s: repository.deposit_wallets(s, self.chain_id)
        )
        if not wallets:
            return 0
        addresses = list(wallets)
        found: list[Transfer] = []
        if self.tokens:
            # Recipients travel as one OR-ed topic list per request: bounded, as nodes cap them.
            for i in range(0, len(addresses), ADDRESSES_PER_LOG_QUERY):
                batch = addresses[i : i + ADDRESSES_PER_LOG_QUERY]
                found += await self.chain.token_transfers(list(self.tokens), batch, low, high)
        if self.native_scale is not None:
            found += await self.chain.native_transfers(addresses, low, high)
        # Zero-value Transfer events (anyone can emit them to any address) carry nothing.
        found = [t for t in found if t.value > 0]

        async def record(session: AsyncSession) -> None:
            for transfer in found:
                wallet = wallets[transfer.to_address.lower()]
                asset, scale = self._asset(transfer)
                await repository.record_seen(
                    session,
                    chain_id=self.chain_id,
                    tx_hash=transfer.tx_hash,
                    log_index=transfer.log_index,
                    wallet_id=wallet.id,
                    asset=asset,
                    token=transfer.token,
                    from_address=transfer.from_address,
                    to_address=transfer.to_address,
                    amount=Decimal(transfer.value).scaleb(-scale),
                    block_number=transfer.block_number,
                    block_hash=transfer.block_hash,
                )
                await history.seen(
                    session,
                    chain_id=self.chain_id,
                    tx_hash=transfer.tx_hash,
                    log_index=transfer.log_index,
                    wallet=wallet,
                    domain=self.domain.value,
                    required=self.confirmations,
                )

        if found:
            await run_in_transaction(sessions, record)
        return len(found)

    def _asset(self, transfer: Transfer) -> tuple[str, int]:
        if transfer.token is None:
            assert self.native_scale is not None  # noqa: S101 - only watched when set
            return "ETH", self.native_scale
        token = self.tokens[transfer.token.lower()]
        return token.asset, token.scale

    async def _settle(self, sessions: SessionFactory, head: int, report: ScanReport) -> None:
        confirmed_up_to = head - self.confirmations + 1
        await run_in_transaction(
            sessions,
            lambda s: history.refresh_confirmations(s, self.chain_id, head, self.confirmations),
        )
        open_ = await run_in_transaction(
            sessions, lambda s: repository.open_deposits(s, self.chain_id, up_to_block=head)
        )
        for deposit in open_:
            if deposit.block_number > confirmed_up_to:
                report.waiting += 1
                continue
            outcome = await self._check(deposit)
            if outcome == "orphaned":
                await run_in_transaction(sessions, _orphaner(deposit.id))
                report.orphaned.append(deposit.id)
                log.warning("chain deposit vanished", tx_hash=deposit.tx_hash, id=deposit.id)
            elif outcome == "confirmed" and await run_in_transaction(
                sessions, self._crediter(deposit, head)
            ):
                report.credited.append(deposit.id)
            else:
                report.waiting += 1

    async def _check(self, deposit: DepositRow) -> str:
        """'confirmed', 'orphaned' (its block was replaced and the transaction is gone, or it
        failed), or 'wait' (mined elsewhere since — the next scan records where — or the node
        lags)."""
        receipt = await self.chain.receipt(deposit.tx_hash)
        if receipt is None:
            canonical = await self.chain.block_hash(deposit.block_number)
            # A missing receipt while its block still stands is a lagging node, not a reorg.
            return "wait" if canonical == deposit.block_hash else "orphaned"
        if receipt.block_hash.lower() != deposit.block_hash:
            return "wait"
        if receipt.status != 1:
            return "orphaned"  # the transaction failed: nothing arrived
        return "confirmed" if self._still_there(deposit, receipt) else "orphaned"

    def _crediter(
        self, deposit: DepositRow, head: int
    ) -> Callable[[AsyncSession], Awaitable[bool]]:
        async def credit(session: AsyncSession) -> bool:
            return await self._credit(session, deposit, head)

        return credit

    def _still_there(self, deposit: DepositRow, receipt: TxReceipt) -> bool:
        """The deposit's log is in the receipt, unchanged (token, recipient, amount)."""
        if deposit.log_index < 0:
            return True  # ether: the transaction itself, whose hash fixes value and recipient
        token = self.tokens.get(deposit.token or "")
        for entry in receipt.logs:
            if int(entry["logIndex"]) != deposit.log_index:
                continue
            topics = [HexBytes(t) for t in entry["topics"]]
            return (
                token is not None
                and str(entry["address"]).lower() == deposit.token
                and len(topics) == 3
                and topics[0] == HexBytes(TRANSFER_TOPIC)
                and topics[2][-20:] == HexBytes(deposit.to_address)
                and int.from_bytes(HexBytes(entry["data"])[:32], "big")
                == int(deposit.amount.scaleb(token.scale))
            )
        return False

    async def _credit(self, session: AsyncSession, deposit: DepositRow, head: int) -> bool:
        current = await repository.lock_deposit(session, deposit.id)
        if current.status != "seen" or current.block_hash != deposit.block_hash:
            return False  # credited by another run, or moved since it was checked
        owner = await repository.get_wallet(session, current.wallet_id)
        account = await ledger.customer_account(
            session,
            owner_type=OwnerType(owner.owner_type),
            owner_id=owner.owner_id,
            domain=self.domain,
            asset=current.asset,
        )
        external = await ledger.platform_account(
            session, asset=current.asset, kind=AccountKind.EXTERNAL
        )
        reference = f"chain:{self.chain_id}:{current.tx_hash}:{current.log_index}"
        entry = await ledger.transfer(
            session,
            source=external,
            destination=account,
            amount=current.amount,
            kind="chain.deposit",
            reference=reference,
            metadata={
                "chain_id": self.chain_id,
                "tx_hash": current.tx_hash,
                "log_index": current.log_index,
                "block_number": current.block_number,
                "deposit_id": current.id,
                "wallet_id": str(current.wallet_id),
            },
        )
        # The history row completes in this transaction, before the deposit row turns final.
        await history.credited(
            session,
            current,
            owner,
            domain=self.domain.value,
            required=self.confirmations,
            confirmations=head - current.block_number + 1,
            entry_reference=reference,
        )
        await repository.mark_credited(
            session, current.id, entry_id=entry.id, entry_created_at=entry.created_at
        )
        log.info("chain deposit credited", id=current.id, tx_hash=current.tx_hash)
        return True


def _orphaner(deposit_id: int) -> Callable[[AsyncSession], Awaitable[None]]:
    async def orphan(session: AsyncSession) -> None:
        current = await repository.lock_deposit(session, deposit_id)
        if current.status == "seen":
            await repository.mark_orphaned(session, deposit_id)
            await history.orphaned(session, deposit_id)

    return orphan
