"""The Balance service: a user's money across domains and assets, valued in USD.

Balances come from the ledger: now from the stored balance rows, at a past instant from the
postings (each posting carries the balance after it). The read is one statement; valuing
happens after the transaction, so a price feed is never asked while a connection is held.

Valuation: an asset's ``value_usd`` is (available + held) × its USD price, rounded to the
cent half-even (banker's rounding, so display rounding has no upward bias). It is a figure
for display only, never stored or posted. Domain totals are sums of the rounded asset
values and ``total_usd`` is the sum of the domain totals, so the parts always add up to the
whole as shown. "Now" is valued at the price snapshot of the last few seconds
(``diboas.market.prices.CACHE_SECONDS``) — the exchanges' market data the quotes use — and a
past instant at that instant's prices. A value computed from a price older than the allowed
age (the feed stopped answering, or answered with old data) is marked ``price_stale`` with
the instant the price was observed, never passed off as current.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.balances import repository
from diboas.balances.repository import Snapshot
from diboas.ledger.models import AccountKind, Domain, OwnerType
from diboas.market.prices import PriceService

CUSTOMER_DOMAINS = (Domain.BANKING, Domain.INVESTING, Domain.DEFI)
_CENT = Decimal("0.01")
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class AssetBalance:
    """One asset in one domain: available, held, and their USD value (rounded to the cent)."""

    domain: str
    asset: str
    scale: int
    available: Decimal
    held: Decimal
    value_usd: Decimal
    owed: Decimal = _ZERO  # what the user owes after a reversal took back spent money (>= 0)
    priced_at: datetime | None = None  # when the price used was observed (None: not priced)
    price_stale: bool = False  # valued with a price older than the allowed age


@dataclass(frozen=True, slots=True)
class BalanceSheet:
    """A user's balances at one instant, with totals per domain and overall."""

    as_of: datetime
    final: bool
    total_usd: Decimal
    domains: dict[str, Decimal]
    assets: list[AssetBalance] = field(default_factory=list)

    @property
    def price_stale(self) -> bool:
        """Some value in the sheet was computed from a stale price."""
        return any(asset.price_stale for asset in self.assets)


async def snapshot(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    at: datetime | None,
    owner_type: OwnerType = OwnerType.USER,
) -> Snapshot:
    """The owner's account balances now (``at`` None) or at ``at``, in one statement (a
    user's by default; an organisation's treasury with ``owner_type``)."""
    return await repository.owner_balances(session, owner_type.value, owner_id, at)


def assets_to_price(snap: Snapshot) -> set[str]:
    """The assets whose price the valuation needs (those with a non-zero balance)."""
    return {account.asset for account in snap.accounts if account.balance != 0}


def usd_value(amount: Decimal, price: Decimal) -> Decimal:
    """``amount`` × ``price`` rounded to the cent, half-even (display only)."""
    return (amount * price).quantize(_CENT, rounding=ROUND_HALF_EVEN)


def value(
    snap: Snapshot,
    prices: Mapping[str, Decimal],
    *,
    priced_at: Mapping[str, datetime] | None = None,
    stale: Set[str] = frozenset(),
) -> BalanceSheet:
    """Pivot the accounts to (domain, asset) rows with available, held and owed, and value
    them (net of what is owed); ``priced_at`` and ``stale`` say when each price was observed
    and which are too old (``market.prices.Valuation``)."""
    observed = priced_at or {}
    pairs: dict[tuple[str, str], dict[str, Decimal]] = {}
    scales: dict[str, int] = {}
    for account in snap.accounts:
        kinds = pairs.setdefault((account.domain, account.asset), {})
        kinds[account.kind] = kinds.get(account.kind, _ZERO) + account.balance
        scales[account.asset] = account.scale
    order = {domain.value: index for index, domain in enumerate(CUSTOMER_DOMAINS)}
    assets: list[AssetBalance] = []
    domains = {domain.value: _ZERO for domain in CUSTOMER_DOMAINS}
    for domain, asset in sorted(pairs, key=lambda pair: (order[pair[0]], pair[1])):
        kinds = pairs[(domain, asset)]
        available = kinds.get(AccountKind.AVAILABLE.value, _ZERO)
        held = kinds.get(AccountKind.HELD.value, _ZERO)
        owed = -kinds.get(AccountKind.OWED.value, _ZERO)
        amount = available + held - owed  # a debt counts against what the user is worth
        priced = amount != 0
        worth = usd_value(amount, prices[asset]) if priced else _ZERO.quantize(_CENT)
        assets.append(
            AssetBalance(
                domain,
                asset,
                scales[asset],
                available,
                held,
                worth,
                owed,
                observed.get(asset) if priced else None,
                priced and asset in stale,
            )
        )
        domains[domain] += worth
    return BalanceSheet(
        as_of=snap.at,
        final=snap.final,
        total_usd=sum(domains.values(), _ZERO),
        domains=domains,
        assets=assets,
    )


async def valued(prices: PriceService, snap: Snapshot, at: datetime | None) -> BalanceSheet:
    """``snap`` valued in USD at ``at`` (now: None) by the platform's one price source, each
    value saying when its price was observed and whether it is stale. Called after the
    snapshot's transaction: the price feed is never asked while a connection is held."""
    found = await prices.valuation(assets_to_price(snap), at)
    return value(snap, found.prices, priced_at=found.priced_at, stale=found.stale)
