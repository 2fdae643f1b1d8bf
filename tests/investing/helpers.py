"""Deterministic venues for investing tests: prices the test sets, books whose first level
sits exactly at that price (no spread), so every figure can be worked out by hand."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from diboas.market.prices import FEED_SERVICE, PRICES_SERVICE, PriceService
from diboas.providers.exchange import (
    ExchangeOrder,
    ExchangeUnavailableError,
    SandboxExchange,
    Side,
    VenueModel,
)
from diboas.providers.exchange_routing import VENUES_SERVICE
from diboas.providers.market import SandboxAsset, SandboxPriceFeed
from diboas.providers.resilience import CircuitBreaker, Failover, ProviderSlot, RetryPolicy
from tests.banking.helpers import customer, fund

AT = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)


class SetPrices(SandboxPriceFeed):
    """A sandbox feed whose prices the test sets (constant until changed)."""

    def __init__(self, **prices: str) -> None:
        super().__init__({"USD": SandboxAsset(Decimal(1))})
        self.set(**prices)

    def set(self, **prices: str) -> None:
        for asset, price in prices.items():
            self._assets[asset] = SandboxAsset(Decimal(price))


def model(taker_fee: str) -> VenueModel:
    return VenueModel(
        half_spread=Decimal(0),
        level_step=Decimal("0.001"),
        levels=10,
        level_quantity={"BTC": Decimal(1), "ETH": Decimal(10)},
        taker_fee=Decimal(taker_fee),
    )


def venues(feed: SetPrices) -> Failover[Any]:
    """Two venues on the same prices: ``cheap`` (0.1 % fee) and ``dear`` (0.6 %)."""
    slots = [
        ProviderSlot(
            "dear",
            SandboxExchange(name="dear", model=model("0.006"), feed=feed),
            CircuitBreaker("dear"),
        ),
        ProviderSlot(
            "cheap",
            SandboxExchange(name="cheap", model=model("0.001"), feed=feed),
            CircuitBreaker("cheap"),
        ),
    ]
    return Failover(slots, policy=RetryPolicy(attempts=2, base_delay=0, timeout=5))


def services(feed: SetPrices) -> dict[str, Any]:
    """App services: the venues, and prices from the same feed with no cache."""
    return {
        VENUES_SERVICE: venues(feed),
        FEED_SERVICE: feed,
        PRICES_SERVICE: PriceService(feed, cache_seconds=0),
    }


class LostAnswer:
    """A venue that fills the order but whose answer never arrives (or, with
    ``place=False``, that never receives the order at all)."""

    def __init__(self, inner: SandboxExchange, *, place: bool) -> None:
        self.inner, self.place, self.name = inner, place, inner.name

    def __getattr__(self, item: str) -> object:
        return getattr(self.inner, item)

    async def market_order(self, asset: str, side: Side, **kw: object) -> ExchangeOrder:
        if self.place:
            await self.inner.market_order(asset, side, **kw)  # type: ignore[arg-type]
        raise ExchangeUnavailableError("connection reset", provider=self.name)


async def investing_balance(engine: AsyncEngine, user_id: uuid.UUID, asset: str = "BTC") -> Decimal:
    """A user's investing balance of an asset (available + held)."""
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                text("""SELECT coalesce(sum(b.balance), 0) FROM balances b
                          JOIN accounts a ON a.id = b.account_id
                         WHERE a.owner_id = :id AND a.domain = 'investing' AND a.asset = :asset"""),
                {"id": user_id, "asset": asset},
            )
        ).scalar_one()
    return Decimal(value)


async def funded(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory, amount: str
) -> dict[str, Any]:
    """A signed-in tier-1 customer with ``amount`` USD in Banking."""
    user = await customer(client, engine)
    await fund(sessions, user["id"], amount)
    return user
