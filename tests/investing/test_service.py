"""The investing service on a real PostgreSQL (each test rolled back): FIFO lots and profit
and loss against hand-computed figures, the price-locked ledger postings, and what happens
when a venue's answer is lost (reconciled later) or the venue refuses."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.identity import repository as users
from diboas.identity.repository import User
from diboas.investing import repository
from diboas.investing import tasks as _tasks  # noqa: F401 - registers the reconcile job
from diboas.investing.service import execution, portfolio, quotes
from diboas.ledger import holds
from diboas.ledger import service as ledger
from diboas.ledger.models import AccountKind, Domain, OwnerType
from diboas.providers.exchange import (
    SandboxExchange,
)
from diboas.providers.resilience import CircuitBreaker, Failover, ProviderSlot, RetryPolicy
from tests.investing.helpers import AT, LostAnswer, SetPrices, model, venues


async def _user(session: AsyncSession, usd: str) -> User:
    made = await users.insert(
        session,
        email=f"inv-{uuid.uuid4().hex[:10]}@example.com",
        full_name="Grace Hopper",
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$not-a-real-hash",
    )
    await session.execute(text("UPDATE users SET kyc_tier = 1 WHERE id = :id"), {"id": made.id})
    account = await ledger.customer_account(
        session, owner_type=OwnerType.USER, owner_id=made.id, domain=Domain.BANKING, asset="USD"
    )
    external = await ledger.platform_account(session, asset="USD", kind=AccountKind.EXTERNAL)
    await ledger.transfer(
        session, source=external, destination=account, amount=Decimal(usd), kind="test.fund"
    )
    user = await users.get(session, made.id)
    assert user is not None
    return user


async def _usd(
    session: AsyncSession, user: User, kind: AccountKind = AccountKind.AVAILABLE
) -> Decimal:
    account = await ledger.customer_account(
        session,
        owner_type=OwnerType.USER,
        owner_id=user.id,
        domain=Domain.BANKING,
        asset="USD",
        kind=kind,
    )
    return (await ledger.balance(session, account.id)).balance


async def _trade(
    session: AsyncSession, venues: Failover, user: User, side: str, asset: str, quantity: str
) -> repository.Order:
    from diboas.settings import Settings

    request = quotes.parse_trade(venues, side=side, asset=asset, amount_usd=None, quantity=quantity)
    priced = await quotes.price_trade(venues, request)
    quote = await quotes.lock_quote(session, Settings(env="test"), user=user, priced=priced)
    return await execution.execute(session, venues, user=user, quote_id=quote.id)


async def test_fifo_lots_and_profit_and_loss_by_hand(session: AsyncSession) -> None:
    prices = SetPrices(ETH="2000")
    market = venues(prices)
    grace = await _user(session, "3000.00")

    # 0.5 ETH at 2,000: 1,000.00 + 1 % (10.00) + the venue's 0.1 % (1.00) → lot 1 costs 1,011.00.
    await _trade(session, market, grace, "buy", "ETH", "0.5")
    # 0.3 ETH at 3,000: 900.00 + 9.00 + 0.90 → lot 2 costs 909.90.
    prices.set(ETH="3000")
    await _trade(session, market, grace, "buy", "ETH", "0.3")
    # Sell 0.6 at 2,500: 1,500.00 − 15.00 − 1.50 = 1,483.50 net. FIFO: all of lot 1 (1,011.00)
    # and 0.1 of lot 2 (909.90 × 1/3 = 303.30); proceeds shared 5:1 → 1,236.25 and 247.25.
    prices.set(ETH="2500")
    sold = await _trade(session, market, grace, "sell", "ETH", "0.6")
    assert (sold.amount_usd, sold.fee_usd) == (Decimal("1500.00"), Decimal("16.50"))

    found = await portfolio.basis(session, grace.id)
    [eth] = portfolio.value(found, {"ETH": Decimal("2500")}, AT).holdings
    assert eth.quantity == Decimal("0.2")
    assert eth.cost_basis == Decimal("606.60")  # 909.90 − 303.30
    assert eth.average_cost == Decimal("3033.00")
    assert eth.value_usd == Decimal("500.00")
    assert eth.unrealised_pnl == Decimal("-106.60")
    assert eth.realised_pnl == Decimal("169.20")  # (1,236.25 − 1,011.00) + (247.25 − 303.30)

    # The rest: 0.2 at 2,500 → 500.00 − 5.00 − 0.50 = 494.50 against exactly what is left of
    # lot 2's cost (606.60): realised 169.20 − 112.10.
    await _trade(session, market, grace, "sell", "ETH", "0.2")
    found = await portfolio.basis(session, grace.id)
    [eth] = portfolio.value(found, {"ETH": Decimal("2500")}, AT).holdings
    assert (eth.quantity, eth.cost_basis, eth.value_usd) == (0, 0, 0)
    assert eth.realised_pnl == Decimal("57.10")
    assert await repository.open_lots(session, grace.id) == []
    # Banking: 3,000.00 − 1,011.00 − 909.90 + 1,483.50 + 494.50.
    assert await _usd(session, grace) == Decimal("3057.10")


async def test_the_price_lock_residue_goes_to_the_platform(session: AsyncSession) -> None:
    prices = SetPrices(BTC="50000")
    market = venues(prices)
    grace = await _user(session, "1000.00")
    request = quotes.parse_trade(
        market, side="buy", asset="BTC", amount_usd="500.00", quantity=None
    )
    priced = await quotes.price_trade(market, request)
    from diboas.settings import Settings

    quote = await quotes.lock_quote(session, Settings(env="test"), user=grace, priced=priced)
    # The market moves 1 % against the platform before the order reaches the venue: the
    # user still gets the locked 0.01 BTC for 500.00; the platform pays 505.00 + 0.51.
    prices.set(BTC="50500")
    order = await execution.execute(session, market, user=grace, quote_id=quote.id)
    assert order.quantity == Decimal("0.01") and order.amount_usd == Decimal("500.00")
    assert (order.venue_cost, order.venue_fee) == (Decimal("505.00"), Decimal("0.51"))
    entry = (
        await session.execute(
            text("""SELECT a.kind, a.asset, p.amount FROM postings p JOIN accounts a ON a.id = p.account_id
                     JOIN entries e ON e.id = p.entry_id AND e.created_at = p.created_at
                     WHERE e.kind = 'investing.buy' AND e.reference = :ref ORDER BY p.amount"""),
            {"ref": f"txn:{order.transaction_id}"},
        )
    ).all()
    by_kind = {(row.kind, row.asset): row.amount for row in entry}
    # clearing −(500.00 + 0.50 quoted venue fee); venue paid 505.51; residue −5.01 to the platform.
    assert by_kind[("clearing", "USD")] == Decimal("-500.50")
    assert by_kind[("external", "USD")] == Decimal("505.51")
    assert by_kind[("fees", "USD")] == Decimal("-5.01")
    assert by_kind[("available", "BTC")] == Decimal("0.01")


@pytest.mark.parametrize(
    ("placed", "swept"), [(True, False), (False, False), (True, True), (False, True)]
)
async def test_a_lost_answer_is_reconciled_later(
    session: AsyncSession, placed: bool, swept: bool
) -> None:
    prices = SetPrices(BTC="40000")
    inner = SandboxExchange(name="cheap", model=model("0.001"), feed=prices, clock=lambda: AT)
    flaky = Failover(
        [ProviderSlot("cheap", LostAnswer(inner, place=placed), CircuitBreaker("cheap"))],  # type: ignore[list-item]
        policy=RetryPolicy(attempts=1, timeout=5),
    )
    healthy = Failover([ProviderSlot("cheap", inner, CircuitBreaker("cheap2"))])  # type: ignore[list-item]
    grace = await _user(session, "1000.00")
    request = quotes.parse_trade(flaky, side="buy", asset="BTC", amount_usd=None, quantity="0.01")
    from diboas.settings import Settings

    quote = await quotes.lock_quote(
        session, Settings(env="test"), user=grace, priced=await quotes.price_trade(flaky, request)
    )
    with pytest.raises(execution.TradePendingError):
        async with session.begin_nested():
            await execution.execute(session, flaky, user=grace, quote_id=quote.id)
    await execution.after_failure(
        session, user_id=grace.id, quote_id=quote.id, error=execution.TradePendingError("lost")
    )
    # Still open, the money still held: the venue may have filled it.
    assert (await repository.get_quote(session, quote.id, user_id=grace.id)).status == "open"  # type: ignore[union-attr]
    assert await _usd(session, grace, AccountKind.HELD) == Decimal("404.40")  # 400 + 4.00 + 0.40

    if swept:
        # `diboas maintain` expired the hold before the venue was asked: the money went back
        # to the available balance, and the settlement takes it from there.
        await holds.release_hold(session, quote.hold_id, status=holds.HoldStatus.EXPIRED)
        assert await _usd(session, grace) == Decimal("1000.00")
    outcome = await execution.reconcile(session, healthy, user_id=grace.id, quote_id=quote.id)
    assert outcome == ("settled" if placed else "released")
    assert await _usd(session, grace, AccountKind.HELD) == 0
    assert await _usd(session, grace) == (Decimal("595.60") if placed else Decimal("1000.00"))
    settled = await repository.get_quote(session, quote.id, user_id=grace.id)
    assert settled is not None and settled.status == ("executed" if placed else "failed")
    # Running it again does nothing.
    assert await execution.reconcile(session, healthy, user_id=grace.id, quote_id=quote.id) == (
        "nothing to do"
    )


async def test_a_refused_order_releases_its_hold(session: AsyncSession) -> None:
    prices = SetPrices(BTC="40000")
    market = venues(prices)
    grace = await _user(session, "100.00")
    request = quotes.parse_trade(
        market, side="buy", asset="BTC", amount_usd=None, quantity="0.00100066"
    )
    from diboas.settings import Settings

    quote = await quotes.lock_quote(
        session, Settings(env="test"), user=grace, priced=await quotes.price_trade(market, request)
    )
    with pytest.raises(execution.TradeRefusedError) as caught:
        async with session.begin_nested():
            await execution.execute(session, market, user=grace, quote_id=quote.id)
    assert caught.value.code == "order_rejected"
    await execution.after_failure(session, user_id=grace.id, quote_id=quote.id, error=caught.value)
    assert await _usd(session, grace) == Decimal("100.00")
    hold = await holds.get_hold(session, quote.hold_id)
    assert hold.status is holds.HoldStatus.RELEASED
