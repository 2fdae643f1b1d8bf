"""Helpers for DeFi tests over HTTP: an app on sandbox vaults the test owns (a clock it
moves, no accrual unless asked), fixed prices (ETH 2,500 USD: sandbox deposit gas, 242,000
gwei, is 0.61 USD; a redeem, 120,000 gwei, 0.30), and vaults that count or refuse."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.db.urls import plain_url
from diboas.defi.protocols import VAULTS
from diboas.market.prices import FEED_SERVICE, PRICES_SERVICE, PriceService
from diboas.providers.chain import ChainPendingError, ChainRevertedError, ChainUnavailableError
from diboas.providers.defi import SandboxVault, VaultMove
from tests.api.conftest import _client, settings_for_tests
from tests.investing.helpers import SetPrices

API = "/api/v1"
STRATEGIES = f"{API}/defi/strategies"
POSITIONS = f"{API}/defi/positions"
RISK = f"{API}/defi/risk-profile"
RECONCILE = f"{API}/admin/defi/reconciliation"


class Clock:
    """A clock the test moves (the sandbox vault's APY accrues on it)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class CountingVault(SandboxVault):
    """The sandbox vault, counting the deposit transactions it receives."""

    deposits: list[Decimal] = field(default_factory=list)

    async def deposit(self, owner: LocalAccount, assets: Decimal) -> VaultMove:
        self.deposits.append(assets)
        return await super().deposit(owner, assets)


class PausedVault(SandboxVault):
    """A vault whose deposits revert (as a paused ERC-4626 vault's do) after estimating fine."""

    async def deposit(self, owner: LocalAccount, assets: Decimal) -> VaultMove:
        raise ChainRevertedError("EnforcedPause()", error_name="EnforcedPause")


@dataclass
class FlakyVault(SandboxVault):
    """A vault whose node is unreachable for the first ``outages`` deposits (nothing sent)."""

    outages: int = 1

    async def deposit(self, owner: LocalAccount, assets: Decimal) -> VaultMove:
        if self.outages > 0:
            self.outages -= 1
            raise ChainUnavailableError("connection refused")
        return await super().deposit(owner, assets)


class LostDepositVault(SandboxVault):
    """A vault whose deposit is submitted but whose receipt never comes back."""

    async def deposit(self, owner: LocalAccount, assets: Decimal) -> VaultMove:
        raise ChainPendingError("no receipt in time", tx_hash="0x" + "ab" * 32)


class RedeemLostVault(SandboxVault):
    """A vault whose redemptions are submitted but whose receipts never come back."""

    async def redeem(self, owner: LocalAccount, shares: Decimal) -> VaultMove:
        raise ChainPendingError("no receipt in time", tx_hash="0x" + "cd" * 32)


class RedeemRevertsVault(SandboxVault):
    """A vault that takes deposits but whose redemptions revert."""

    async def redeem(self, owner: LocalAccount, shares: Decimal) -> VaultMove:
        raise ChainRevertedError("EnforcedPause()", error_name="EnforcedPause")


def vaults(core: SandboxVault | None = None, clock: Clock | None = None) -> dict[str, Any]:
    clock = clock or Clock()
    return {
        "core": core or CountingVault(apy=Decimal(0), clock=clock),
        "growth": SandboxVault(name="growth (test)", apy=Decimal(0), clock=clock),
    }


def services(vault_map: dict[str, Any] | None = None) -> dict[str, Any]:
    feed = SetPrices(ETH="2500", USDC="1", BTC="50000")
    return {
        VAULTS: vault_map or vaults(),
        FEED_SERVICE: feed,
        PRICES_SERVICE: PriceService(feed, cache_seconds=0),
    }


@asynccontextmanager
async def defi_client(
    database_url: URL, smtp_port: int, app_services: dict[str, Any], **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    values: dict[str, Any] = {"defi_batch_window_seconds": 0}
    values.update(overrides)
    app = create_app(
        settings_for_tests(smtp_port, **values),
        database_url=plain_url(database_url),
        services=app_services,
    )
    async for client in _client(app):
        yield client, app


async def settled(
    client: httpx.AsyncClient, headers: dict[str, str], transaction_id: str, seconds: float = 30
) -> dict[str, Any]:
    """Poll a transaction until it is completed or failed (the in-process worker runs it)."""
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get(f"{API}/transactions/{transaction_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("completed", "failed"):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"transaction still {body['status']}: {body}")
        await asyncio.sleep(0.1)


async def account_balance(
    engine: AsyncEngine, user_id: uuid.UUID, domain: str, asset: str, kind: str = "available"
) -> Decimal:
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                text("""SELECT b.balance FROM balances b JOIN accounts a ON a.id = b.account_id
                         WHERE a.owner_type = 'user' AND a.owner_id = :id AND a.domain = :domain
                           AND a.asset = :asset AND a.kind = :kind"""),
                {"id": user_id, "domain": domain, "asset": asset, "kind": kind},
            )
        ).scalar()
    return Decimal(0) if value is None else Decimal(value)


async def audit_actions(engine: AsyncEngine, user_id: uuid.UUID) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT action FROM audit_log WHERE actor_id = :id ORDER BY id"), {"id": user_id}
        )
        return [row.action for row in rows]


async def saga_state(
    client: httpx.AsyncClient, headers: dict[str, str], transaction_id: str, state: str
) -> dict[str, Any]:
    """Poll a transaction until its saga reaches ``state`` (the in-process worker moves it)."""
    deadline = time.monotonic() + 30
    while True:
        response = await client.get(f"{API}/transactions/{transaction_id}", headers=headers)
        body: dict[str, Any] = response.json()
        if body["saga_state"] == state:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"saga still {body['saga_state']}: {body}")
        await asyncio.sleep(0.1)
