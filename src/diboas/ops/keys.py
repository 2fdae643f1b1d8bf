"""Rotating the data-at-rest encryption key (``diboas keys reseal`` / ``diboas keys status``).

Two tables hold data sealed with ``kit.crypto``: ``bank_accounts`` (the account number, and a
fingerprint keyed under a version too) and ``chain_wallets`` (custodial private keys). Re-sealing
walks each table by id in bounded batches, one short transaction per batch that locks only its
own rows (``FOR UPDATE``), so the platform keeps serving meanwhile; a row already under the
current version is skipped, so a run that stopped half way is simply run again. The status
counts rows per key version: once no row uses an old version, it can be dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking.service import bank_accounts
from diboas.chain import wallets
from diboas.db.engine import SessionFactory, create_engine, create_session_factory
from diboas.db.transactions import run_in_transaction
from diboas.kit.crypto import KeyRing
from diboas.settings import Settings

DEFAULT_BATCH_SIZE = 100


class _Batch(Protocol):
    resealed: int
    last_id: uuid.UUID | None
    exhausted: bool
    unavailable: list[uuid.UUID]


_Reseal = Callable[..., Awaitable[_Batch]]
# Each table with sealed data and the function that re-seals one batch of it.
_TABLES: tuple[tuple[str, _Reseal], ...] = (
    ("bank_accounts", bank_accounts.reseal_batch),
    ("chain_wallets", wallets.reseal_batch),
)


@dataclass(slots=True)
class TableReseal:
    """What re-sealing did to one table."""

    table: str
    resealed: int = 0
    batches: int = 0
    unavailable: list[uuid.UUID] = field(default_factory=list)  # version not configured
    kept_fingerprint: list[uuid.UUID] = field(default_factory=list)  # bank accounts only


async def reseal(
    sessions: SessionFactory,
    keys: KeyRing,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_retries: int = 8,
) -> list[TableReseal]:
    """Re-seal every row of every table under ``keys.current`` (fingerprints made again)."""
    return [
        await _reseal_table(
            sessions, keys, table, reseal_batch, batch_size=batch_size, max_retries=max_retries
        )
        for table, reseal_batch in _TABLES
    ]


async def _reseal_table(
    sessions: SessionFactory,
    keys: KeyRing,
    table: str,
    reseal_batch: _Reseal,
    *,
    batch_size: int,
    max_retries: int,
) -> TableReseal:
    report = TableReseal(table)
    after: uuid.UUID | None = None
    while True:

        async def one(session: AsyncSession, start: uuid.UUID | None = after) -> _Batch:
            return await reseal_batch(session, keys, after=start, limit=batch_size)

        batch = await run_in_transaction(sessions, one, max_retries=max_retries)
        report.batches += 1
        report.resealed += batch.resealed
        report.unavailable += batch.unavailable
        if isinstance(batch, bank_accounts.ResealBatch):
            report.kept_fingerprint += batch.kept_fingerprint
        if batch.exhausted:
            return report
        after = batch.last_id


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """Rows per key version in every column that records one, against the configuration."""

    current: int
    configured: tuple[int, ...]
    counts: dict[str, dict[int, int]]  # "table.column" -> {version: rows}

    @property
    def in_use(self) -> set[int]:
        """Versions some row still needs (to open it, or to find its fingerprint)."""
        return {v for by_version in self.counts.values() for v, n in by_version.items() if n}

    @property
    def missing(self) -> list[int]:
        """Versions in use that are not configured: those rows cannot be used."""
        return sorted(self.in_use - set(self.configured))

    @property
    def pending(self) -> int:
        """Rows (per column) not yet under the current version: what ``reseal`` would move."""
        return sum(
            n
            for by_version in self.counts.values()
            for v, n in by_version.items()
            if v != self.current
        )

    @property
    def droppable(self) -> list[int]:
        """Configured earlier versions no row uses any more: safe to remove from the settings."""
        return sorted(set(self.configured) - self.in_use - {self.current})

    def lines(self) -> list[str]:
        """The status as an operator reads it."""
        out = [
            f"current key version: {self.current}; configured: "
            + ", ".join(str(v) for v in self.configured)
        ]
        for column, by_version in self.counts.items():
            shown = ", ".join(f"v{v}: {n}" for v, n in sorted(by_version.items())) or "no rows"
            out.append(f"{column}: {shown}")
        if self.missing:
            out.append(
                "NOT CONFIGURED but in use: "
                + ", ".join(f"v{v}" for v in self.missing)
                + " — add it back to DIBOAS_ENCRYPTION_KEYS_PREVIOUS"
            )
        if self.pending:
            out.append(f"{self.pending} row(s) not on v{self.current}: run `diboas keys reseal`")
        out.extend(f"v{v}: no rows use it — it can be dropped" for v in self.droppable)
        if not self.pending and not self.missing:
            out.append(f"every row is on v{self.current}")
        return out


async def status(session: AsyncSession, keys: KeyRing) -> KeyStatus:
    """Count rows per key version in every sealed table."""
    banking = await bank_accounts.key_versions(session)
    counts = {
        "bank_accounts.key_version": banking["key_version"],
        "bank_accounts.fingerprint_version": banking["fingerprint_version"],
        "chain_wallets.key_version": await wallets.key_versions(session),
    }
    return KeyStatus(keys.current, keys.versions, counts)


# --- the commands' bodies (a database URL in, a report out) -----------------------------------


async def reseal_database(
    url: str, settings: Settings, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[list[TableReseal], KeyStatus]:
    """Re-seal everything in the database at ``url``, then its status."""
    engine = create_engine(url, pool_size=1, application_name="diboas-keys")
    try:
        sessions = create_session_factory(engine)
        keys = KeyRing.from_settings(settings)
        reports = await reseal(
            sessions, keys, batch_size=batch_size, max_retries=settings.db_max_retries
        )
        return reports, await run_in_transaction(sessions, lambda s: status(s, keys))
    finally:
        await engine.dispose()


async def status_of_database(url: str, settings: Settings) -> KeyStatus:
    """The key status of the database at ``url``."""
    engine = create_engine(url, pool_size=1, application_name="diboas-keys")
    try:
        sessions = create_session_factory(engine)
        keys = KeyRing.from_settings(settings)
        return await run_in_transaction(sessions, lambda s: status(s, keys))
    finally:
        await engine.dispose()
