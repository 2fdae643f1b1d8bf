"""The pages' money filters round the same way whatever the thread's decimal context says
(ccxt sets half-up on its caller's context; a page rendered after a trade must not follow)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

from diboas.web.templating import money, usd


def test_money_and_usd_round_half_to_even_under_a_half_up_context() -> None:
    with localcontext(rounding=ROUND_HALF_UP):
        assert money(Decimal("1234.125"), "USD", 2) == "1,234.12 USD"
        assert money(Decimal("0.00000015"), "BTC", 7) == "0.0000002 BTC"
        assert usd(Decimal("2.665")) == "$2.66"
        assert usd(Decimal("-0.005")) == "$0.00"
        assert usd(Decimal("-1234.5")) == "-$1,234.50"


def test_money_keeps_the_decimals_a_value_carries_when_no_scale_is_given() -> None:
    assert money(Decimal("12.3400"), "USDC") == "12.3400 USDC"
    assert money("5", "USD") == "5 USD"
