"""The Balance service against the ledger: per domain and asset, available and held, valued
in USD, now and at past instants (inside the test's rolled-back transaction)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.balances import service
from diboas.balances.repository import Snapshot
from diboas.ledger import holds
from diboas.ledger import service as ledger
from diboas.ledger.models import AccountKind, Domain, OwnerType
from diboas.providers.market import SandboxPriceFeed
from tests.ledger.factories import user_account

CENT = Decimal("0.01")


async def _sandbox_prices(snap: Snapshot) -> dict[str, Decimal]:
    return await SandboxPriceFeed().prices_usd(sorted(service.assets_to_price(snap)), snap.at)


async def _sheet(
    session: AsyncSession, owner_id: uuid.UUID, at: datetime | None = None
) -> service.BalanceSheet:
    snap = await service.snapshot(session, owner_id=owner_id, at=at)
    return service.value(snap, await _sandbox_prices(snap))


async def _portfolio(session: AsyncSession, owner_id: uuid.UUID) -> None:
    """Money in every domain: USD (some held) in banking, BTC and ETH in investing, USDC in DeFi."""
    usd = await user_account(session, owner_id=owner_id, funded="1250.75")
    await holds.place_hold(session, account=usd, amount=Decimal("200.25"))
    await user_account(
        session, owner_id=owner_id, asset="BTC", domain=Domain.INVESTING, funded="0.12345678"
    )
    await user_account(
        session, owner_id=owner_id, asset="ETH", domain=Domain.INVESTING, funded="1.5"
    )
    await user_account(
        session, owner_id=owner_id, asset="USDC", domain=Domain.DEFI, funded="300.123456"
    )


async def test_a_user_with_no_accounts_gets_zeros_in_every_domain(session: AsyncSession) -> None:
    sheet = await _sheet(session, uuid.uuid4())
    assert sheet.total_usd == 0 and sheet.assets == []
    assert sheet.domains == {"banking": 0, "investing": 0, "defi": 0}
    assert sheet.final is False and sheet.as_of.tzinfo is not None


async def test_money_in_several_domains_and_assets(session: AsyncSession) -> None:
    owner = uuid.uuid4()
    await _portfolio(session, owner)
    snap = await service.snapshot(session, owner_id=owner, at=None)
    prices = await _sandbox_prices(snap)
    sheet = service.value(snap, prices)

    rows = {(a.domain, a.asset): a for a in sheet.assets}
    assert list(rows) == [
        ("banking", "USD"),
        ("investing", "BTC"),
        ("investing", "ETH"),
        ("defi", "USDC"),
    ]
    usd = rows[("banking", "USD")]
    assert (usd.available, usd.held, usd.value_usd) == (
        Decimal("1050.50"),
        Decimal("200.25"),
        Decimal("1250.75"),
    )
    btc = rows[("investing", "BTC")]
    assert btc.available == Decimal("0.12345678") and btc.held == 0
    assert btc.value_usd == (Decimal("0.12345678") * prices["BTC"]).quantize(CENT, ROUND_HALF_EVEN)
    eth = (Decimal("1.5") * prices["ETH"]).quantize(CENT, ROUND_HALF_EVEN)
    assert rows[("investing", "ETH")].value_usd == eth
    # 300.123456 USDC at exactly 1 USD: 300.12 (half-even to the cent).
    assert rows[("defi", "USDC")].value_usd == Decimal("300.12")

    assert sheet.domains["banking"] == usd.value_usd
    assert sheet.domains["investing"] == btc.value_usd + rows[("investing", "ETH")].value_usd
    assert sheet.domains["defi"] == Decimal("300.12")
    assert sheet.total_usd == sum(sheet.domains.values()) == sum(a.value_usd for a in sheet.assets)


async def test_values_round_half_even_to_the_cent() -> None:
    snap = Snapshot(at=datetime.now(UTC), final=False, accounts=[])
    assert service.value(snap, {}).total_usd == 0
    assert service.usd_value(Decimal("0.125"), Decimal(1)) == Decimal("0.12")
    assert service.usd_value(Decimal("0.135"), Decimal(1)) == Decimal("0.14")
    assert service.usd_value(Decimal("0.00000001"), Decimal("65000.00")) == Decimal("0.00")


async def test_as_of_before_a_movement_shows_the_old_balance(session: AsyncSession) -> None:
    owner = uuid.uuid4()
    account = await user_account(session, owner_id=owner, funded="100.00")
    external = await ledger.platform_account(session, asset="USD", kind=AccountKind.EXTERNAL)
    second = await ledger.transfer(
        session, source=external, destination=account, amount=Decimal("50.00"), kind="deposit"
    )
    before = second.created_at - timedelta(microseconds=1)

    old = await _sheet(session, owner, before)
    new = await _sheet(session, owner, second.created_at)
    assert [(a.available, a.held) for a in old.assets] == [(Decimal("100.00"), 0)]
    assert [(a.available, a.held) for a in new.assets] == [(Decimal("150.00"), 0)]
    assert old.total_usd == Decimal("100.00") and new.total_usd == Decimal("150.00")
    assert old.as_of == before and old.final is False

    # The same figures as the ledger's own balance as of each instant.
    for at, sheet in ((before, old), (second.created_at, new)):
        from_ledger = await ledger.balance_as_of(session, account.id, at)
        assert sheet.assets[0].available == from_ledger.balance
        assert sheet.final == from_ledger.final


async def test_as_of_before_any_movement_is_zero_and_an_old_instant_is_final(
    session: AsyncSession,
) -> None:
    owner = uuid.uuid4()
    await _portfolio(session, owner)
    long_ago = datetime.now(UTC) - timedelta(days=3)
    sheet = await _sheet(session, owner, long_ago)
    assert sheet.final is True
    assert sheet.total_usd == 0
    assert all(a.available == 0 and a.held == 0 and a.value_usd == 0 for a in sheet.assets)


async def test_held_funds_show_as_held_as_of_each_instant(session: AsyncSession) -> None:
    owner = uuid.uuid4()
    account = await user_account(session, owner_id=owner, funded="80.00")
    funded_at = (
        await session.execute(
            text("SELECT max(created_at) FROM postings WHERE account_id = :a"), {"a": account.id}
        )
    ).scalar_one()
    hold = await holds.place_hold(session, account=account, amount=Decimal("30.00"))
    now = await _sheet(session, owner)
    assert [(a.available, a.held) for a in now.assets] == [(Decimal("50.00"), Decimal("30.00"))]
    assert now.total_usd == Decimal("80.00")
    then = await _sheet(session, owner, funded_at)
    assert [(a.available, a.held) for a in then.assets] == [(Decimal("80.00"), Decimal("0"))]
    await holds.release_hold(session, hold.id)
    released = await _sheet(session, owner)
    assert [(a.available, a.held) for a in released.assets] == [(Decimal("80.00"), 0)]


async def test_another_users_money_never_appears(session: AsyncSession) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    await user_account(session, owner_id=mine, funded="10.00")
    await _portfolio(session, theirs)
    # An organisation account with the same owner id is not the user's either.
    await ledger.customer_account(
        session,
        owner_type=OwnerType.ORGANISATION,
        owner_id=mine,
        domain=Domain.BANKING,
        asset="EUR",
    )
    for at in (None, datetime.now(UTC)):
        sheet = await _sheet(session, mine, at)
        assert [(a.domain, a.asset, a.available) for a in sheet.assets] == [
            ("banking", "USD", Decimal("10.00"))
        ]
        assert sheet.total_usd == Decimal("10.00")
