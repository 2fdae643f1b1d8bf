"""Does the platform's record agree with the vaults? For each vault: the omnibus wallet's
shares against the shares the positions own plus the platform's residue; the batches and
withdrawals that need an operator; and the positions' booked values against the users'
DeFi balances in the ledger (which also hold stablecoin deposited straight from a chain by
the deposit watcher, so the ledger may be higher, never lower).

A redemption between the vault's answer and its settlement makes the vault show fewer
shares for a moment; a difference that stays is a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.defi import repository_reports as reports
from diboas.defi.protocols import omnibus_for, vaults_for
from diboas.settings import Settings


@dataclass(frozen=True, slots=True)
class VaultCheck:
    """One vault: what the omnibus wallet holds against what the records say it should."""

    vault: str
    omnibus_shares: Decimal
    position_shares: Decimal
    platform_shares: Decimal

    @property
    def difference(self) -> Decimal:
        return self.omnibus_shares - self.position_shares - self.platform_shares


@dataclass(frozen=True, slots=True)
class Report:
    """The whole check; ``ok`` when every vault agrees and nothing waits for an operator."""

    vaults: list[VaultCheck]
    unfinished: dict[str, list[str]]
    booked_usdc: Decimal
    ledger_usdc: Decimal
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            all(v.difference == 0 for v in self.vaults)
            and not any(self.unfinished.values())
            and self.ledger_usdc >= self.booked_usdc
        )


async def check(sessions: SessionFactory, services: dict[str, Any], settings: Settings) -> Report:
    """Read the vaults (outside any transaction), then the records, and compare."""
    vaults = vaults_for(services, settings)
    owner = await omnibus_for(services, settings, sessions)
    held = {name: await vault.shares_of(owner.address) for name, vault in vaults.items()}

    async def read(session: AsyncSession) -> Report:
        checks = []
        for name, shares in held.items():
            positions, platform = await reports.shares_held(session, name)
            checks.append(VaultCheck(name, shares, positions, platform))
        booked, ledger = await reports.booked_total(session, "USDC")
        return Report(checks, await reports.unfinished(session), booked, ledger)

    return await run_in_transaction(sessions, read)
