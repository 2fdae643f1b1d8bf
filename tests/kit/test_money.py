"""Money parsing: strict decimal strings within the asset's scale."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest

from diboas.kit.errors import InvalidAmountError
from diboas.kit.money import format_amount, parse_amount, round_in_platform_favour


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("10", 2, Decimal("10")),
        ("10.5", 2, Decimal("10.5")),
        ("0.00000001", 8, Decimal("0.00000001")),
        (" 7.25 ", 2, Decimal("7.25")),
        ("9" * 20, 2, Decimal("9" * 20)),
        ("1" * 21, 2, None),
    ],
)
def test_valid_and_too_large_amounts(text: str, scale: int, expected: Decimal | None) -> None:
    if expected is None:
        with pytest.raises(InvalidAmountError, match="too large"):
            parse_amount(text, scale)
    else:
        assert parse_amount(text, scale) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "0",
        "0.00",
        "-1",
        "1.001",
        "1e2",
        "1E2",
        "NaN",
        "inf",
        "Infinity",
        "",
        " ",
        "1,5",
        "0x10",
        "١٢",
        ".5",
        "5.",
        "1 000",
    ],
)
def test_invalid_amounts(bad: str) -> None:
    with pytest.raises(InvalidAmountError):
        parse_amount(bad, 2)


@pytest.mark.parametrize("bad", [1.5, 10, True, None])
def test_non_strings_are_refused(bad: object) -> None:
    with pytest.raises(InvalidAmountError, match="decimal string"):
        parse_amount(bad, 2)  # type: ignore[arg-type]


def test_rounding_favours_the_platform_by_at_most_one_unit() -> None:
    assert round_in_platform_favour(Decimal("1.231"), 2, charge=True) == Decimal("1.24")
    assert round_in_platform_favour(Decimal("1.239"), 2, charge=False) == Decimal("1.23")
    assert round_in_platform_favour(Decimal("1.23"), 2, charge=True) == Decimal("1.23")


def test_format_amount_has_exactly_the_asset_scale() -> None:
    assert format_amount(Decimal("5"), 2) == "5.00"
    assert format_amount(Decimal("0.1"), 8) == "0.10000000"


def test_shown_amounts_round_half_to_even_whatever_the_decimal_context_says() -> None:
    # A library (ccxt) may leave the thread's context rounding half-up: display must not follow.
    with localcontext(rounding=ROUND_HALF_UP):
        assert format_amount(Decimal("0.125"), 2) == "0.12"
        assert format_amount(Decimal("0.135"), 2) == "0.14"
