"""What only the sandbox vault does: deterministic time-based yield and state kept on disk."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from eth_account import Account

from diboas.providers.defi import SECONDS_PER_YEAR, SandboxVault


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_apy_accrues_with_time_and_only_with_time() -> None:
    clock = Clock()
    vault = SandboxVault(apy=Decimal("0.05"), clock=clock)
    owner = Account.create()
    await vault.deposit(owner, Decimal("1000"))
    assert await vault.total_assets() == Decimal("1000")
    assert await vault.total_assets() == Decimal("1000")  # reading does not earn
    clock.now += SECONDS_PER_YEAR / 2
    assert await vault.total_assets() == Decimal("1025")  # 5 % a year, simple, half a year
    move = await vault.redeem(owner, Decimal("1000"))
    assert move.assets == Decimal("1024.999999")  # virtual share's part, rounded down


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "vault.json"
    owner = Account.create()
    first = SandboxVault(clock=clock, state_path=path)
    await first.deposit(owner, Decimal("12.5"))
    first.donate(Decimal("2.5"))
    second = SandboxVault(clock=clock, state_path=path)
    assert await second.shares_of(owner.address) == Decimal("12.5")
    assert await second.total_assets() == Decimal("15")
    assert (await second.redeem(owner, Decimal("12.5"))).assets == Decimal("14.999999")
    third = SandboxVault(clock=clock, state_path=path)
    assert await third.total_shares() == 0
