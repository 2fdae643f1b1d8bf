"""`ledger verify`: every entry balances, every balance is the sum of its postings, and every
account's hash chain is intact. The chain is recomputed here, in Python, independently of
the database function that wrote it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

GENESIS_HASH = bytes(32)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Break:
    """One thing found wrong, precise enough to find the rows."""

    kind: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.subject}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    """What was checked and every break found."""

    entries: int = 0
    postings: int = 0
    accounts: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    def summary(self) -> str:
        head = f"{self.entries} entries, {self.postings} postings, {self.accounts} accounts checked"
        if self.ok:
            return f"ledger OK: {head}; every entry balanced, balances match, hash chains intact"
        lines = [f"ledger BROKEN: {len(self.breaks)} break(s) in {head}"]
        lines += [f"  {b}" for b in self.breaks]
        return "\n".join(lines)


def posting_digest(
    prev: bytes,
    *,
    entry_id: int,
    account_id: int,
    seq: int,
    asset: str,
    amount_text: str,
    balance_after_text: str,
    created_at: datetime,
) -> bytes:
    """The hash of a posting after ``prev``: the same bytes as ledger_posting_digest()."""
    micros = (created_at - _EPOCH) // _MICROSECOND
    fields = (entry_id, account_id, seq, asset, amount_text, balance_after_text, micros)
    return hashlib.sha256(prev + "|".join(str(f) for f in fields).encode()).digest()


_UNBALANCED = text("""
    SELECT entry_id, asset, sum(amount) AS total FROM postings
     GROUP BY entry_id, created_at, asset HAVING sum(amount) <> 0 ORDER BY entry_id
""")
_THIN_ENTRIES = text("""
    SELECT e.id, coalesce(p.n, 0) AS n FROM entries e
      LEFT JOIN (SELECT entry_id, created_at, count(*) AS n FROM postings GROUP BY 1, 2) p
        ON p.entry_id = e.id AND p.created_at = e.created_at
     WHERE coalesce(p.n, 0) < 2 ORDER BY e.id
""")
_BALANCES = text("""
    SELECT b.account_id, b.balance, b.posting_count, b.last_hash, b.non_negative,
           coalesce(s.total, 0) AS total, coalesce(s.n, 0) AS n
      FROM balances b
      LEFT JOIN (SELECT account_id, sum(amount) AS total, count(*) AS n
                   FROM postings GROUP BY account_id) s USING (account_id)
     ORDER BY b.account_id
""")
_CHAIN = text("""
    SELECT account_id, account_seq, entry_id, asset, amount::text AS amount,
           balance_after::text AS balance_after, created_at, hash
      FROM postings ORDER BY account_id, created_at, account_seq
""")


async def verify_ledger(conn: AsyncConnection, *, own_snapshot: bool = True) -> VerifyReport:
    """Check the whole ledger in one consistent snapshot.

    With ``own_snapshot`` (the default) ``conn`` must be fresh: its transaction is made
    REPEATABLE READ, READ ONLY. Without it, the checks see what ``conn``'s current
    transaction sees (tests use this inside their rolled-back transaction).
    """
    report = VerifyReport()
    if own_snapshot:
        await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    report.entries = (await conn.execute(text("SELECT count(*) FROM entries"))).scalar_one()
    for row in await conn.execute(_UNBALANCED):
        report.breaks.append(
            Break("unbalanced", f"entry {row.entry_id}", f"{row.asset} postings sum to {row.total}")
        )
    for row in await conn.execute(_THIN_ENTRIES):
        report.breaks.append(Break("unbalanced", f"entry {row.id}", f"has {row.n} posting(s)"))

    heads: dict[int, tuple[bytes, int]] = {}
    for row in await conn.execute(_BALANCES):
        report.accounts += 1
        heads[row.account_id] = (bytes(row.last_hash), row.posting_count)
        subject = f"account {row.account_id}"
        if row.balance != row.total:
            report.breaks.append(
                Break("balance", subject, f"stored {row.balance} but postings sum to {row.total}")
            )
        if row.posting_count != row.n:
            report.breaks.append(
                Break("balance", subject, f"stored count {row.posting_count}, found {row.n}")
            )
        if row.non_negative and row.balance < 0:
            report.breaks.append(Break("negative", subject, f"balance {row.balance} below zero"))

    await _verify_chains(conn, heads, report)
    return report


async def _verify_chains(
    conn: AsyncConnection, heads: dict[int, tuple[bytes, int]], report: VerifyReport
) -> None:
    account: int | None = None
    prev_hash, prev_seq, running = GENESIS_HASH, 0, Decimal(0)
    seen: set[int] = set()

    def close(account_id: int) -> None:
        stored_hash, stored_count = heads.get(account_id, (GENESIS_HASH, 0))
        if stored_hash != prev_hash or stored_count != prev_seq:
            report.breaks.append(
                Break(
                    "chain",
                    f"account {account_id}",
                    f"chain ends at seq {prev_seq} with {prev_hash.hex()[:16]}…, "
                    f"balance row says seq {stored_count} with {stored_hash.hex()[:16]}…",
                )
            )

    result = await conn.stream(_CHAIN)
    async for row in result:
        report.postings += 1
        if row.account_id != account:
            if account is not None:
                close(account)
            account, prev_hash, prev_seq, running = row.account_id, GENESIS_HASH, 0, Decimal(0)
            seen.add(account)
        subject = f"account {row.account_id} seq {row.account_seq} (entry {row.entry_id})"
        if row.account_seq != prev_seq + 1:
            report.breaks.append(
                Break("chain", subject, f"follows seq {prev_seq}: postings missing or reordered")
            )
        running += Decimal(row.amount)
        if Decimal(row.balance_after) != running:
            report.breaks.append(
                Break("chain", subject, f"balance_after {row.balance_after}, running sum {running}")
            )
            running = Decimal(row.balance_after)
        expected = posting_digest(
            prev_hash,
            entry_id=row.entry_id,
            account_id=row.account_id,
            seq=row.account_seq,
            asset=row.asset,
            amount_text=row.amount,
            balance_after_text=row.balance_after,
            created_at=row.created_at,
        )
        if bytes(row.hash) != expected:
            report.breaks.append(Break("chain", subject, "hash does not match its contents"))
        # Continue from the stored hash, so one altered posting is reported once, not for
        # every posting after it.
        prev_hash, prev_seq = bytes(row.hash), row.account_seq
    if account is not None:
        close(account)
    for account_id, (stored_hash, stored_count) in heads.items():
        if account_id not in seen and (stored_count != 0 or stored_hash != GENESIS_HASH):
            report.breaks.append(
                Break("chain", f"account {account_id}", "balance row has a chain but no postings")
            )
