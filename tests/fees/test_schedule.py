"""The fee schedule as data, and how a quote request is checked against it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.fees import schedule
from diboas.fees.schedule import NotQuotableError, UnknownCurrencyError


async def test_the_schedule_is_read_in_order_with_scales(session: AsyncSession) -> None:
    rows = await schedule.schedule(session)
    ids = (
        await session.execute(text("SELECT id FROM fee_schedule WHERE active ORDER BY id"))
    ).all()
    assert len(rows) == len(ids) > 0
    card = [r for r in rows if (r.operation, r.method) == ("deposit", "card")]
    assert [(r.component, r.percent, r.fixed, r.maximum) for r in card] == [
        ("provider", Decimal("2.9"), Decimal("0.30"), None),
        ("platform", Decimal("0.5"), Decimal("0"), Decimal("25.00")),
    ]
    assert {r.scale for r in rows if r.currency == "USD"} == {2}
    only = await schedule.schedule(session, operation="withdrawal")
    assert {r.operation for r in only} == {"withdrawal"} and len(only) == 2


async def test_a_retired_row_is_left_out(session: AsyncSession) -> None:
    await session.execute(text("UPDATE fee_schedule SET active = false WHERE operation = 'sell'"))
    assert await schedule.schedule(session, operation="sell") == []


async def test_a_quote_basis_is_the_scale_and_the_operations_rows(session: AsyncSession) -> None:
    scale, rows = await schedule.quote_basis(session, operation="withdrawal", currency="ETH")
    assert scale == 18
    assert rows == await schedule.schedule(session, operation="withdrawal")
    await session.execute(text("UPDATE fee_schedule SET active = false WHERE operation = 'sell'"))
    assert await schedule.quote_basis(session, operation="sell", currency="USD") == (2, [])
    with pytest.raises(UnknownCurrencyError) as refused:
        await schedule.quote_basis(session, operation="deposit", currency="XYZ")
    assert refused.value.status_code == 422
    assert refused.value.details == {"field": "currency", "currency": "XYZ"}


async def test_methods_resolve_from_the_schedule(session: AsyncSession) -> None:
    deposits = await schedule.schedule(session, operation="deposit")
    resolve = schedule.resolve_method
    assert resolve(deposits, operation="deposit", currency="USD", method=None) == "card"
    assert resolve(deposits, operation="deposit", currency="USD", method="ach") == "ach"
    with pytest.raises(NotQuotableError) as unknown:
        resolve(deposits, operation="deposit", currency="USD", method="wire")
    assert unknown.value.details["methods"] == ["ach", "card"]
    with pytest.raises(NotQuotableError) as unpriced:
        resolve(deposits, operation="deposit", currency="EUR", method=None)
    assert unpriced.value.details["currencies"] == ["USD"]

    transfers = await schedule.schedule(session, operation="transfer")
    assert resolve(transfers, operation="transfer", currency="USD", method=None) is None
    with pytest.raises(NotQuotableError):
        resolve(transfers, operation="transfer", currency="USD", method="card")


async def test_a_method_is_needed_only_where_every_row_names_one(session: AsyncSession) -> None:
    # A card surcharge on purchases: a buy by card pays it; a buy by no method does not.
    await session.execute(
        text("""INSERT INTO fee_schedule (operation, method, component, currency, percent, description)
                VALUES ('buy', 'card', 'provider', 'USD', 3, 'Card purchase')""")
    )
    buys = await schedule.schedule(session, operation="buy")
    resolve = schedule.resolve_method
    assert resolve(buys, operation="buy", currency="USD", method=None) is None
    assert resolve(buys, operation="buy", currency="USD", method="card") == "card"
    # Payouts with only method rows and the default taken away: the method must be named.
    await session.execute(
        text("UPDATE fee_schedule SET method = 'rtp' WHERE operation = 'withdrawal'")
    )
    payouts = await schedule.schedule(session, operation="withdrawal")
    with pytest.raises(NotQuotableError, match="needs a method") as refused:
        resolve(payouts, operation="withdrawal", currency="USD", method=None)
    assert refused.value.details == {"field": "method", "methods": ["rtp"]}
