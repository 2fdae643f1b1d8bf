"""Money: Decimal amounts with an explicit scale per asset; never floats."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal, InvalidOperation

from diboas.kit.errors import InvalidAmountError

# The most digits an amount may carry before the decimal point (far above any real value,
# low enough that no arithmetic overflows NUMERIC or a context's precision).
MAX_INTEGER_DIGITS = 20

# ASCII digits only: Decimal() would also take other scripts' digits, exponents and "NaN".
_PLAIN_DECIMAL = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?", re.ASCII)


def parse_amount(value: str | Decimal, scale: int, *, field: str = "amount") -> Decimal:
    """A strictly positive amount with at most ``scale`` decimals.

    Strings only (or Decimals from trusted code): no floats, no exponent notation, no NaN or
    infinities, no more decimals than the asset has. Raises InvalidAmountError otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, (str, Decimal)):
        raise InvalidAmountError(f"{field} must be a decimal string", details={"field": field})
    text = (value if isinstance(value, str) else format(value, "f")).strip()
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise InvalidAmountError(
            f"{field} must be a plain decimal string", details={"field": field}
        )
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise InvalidAmountError(
            f"{field} is not a decimal number", details={"field": field}
        ) from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidAmountError(f"{field} must be greater than zero", details={"field": field})
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > scale:
        raise InvalidAmountError(
            f"{field} has more than {scale} decimals", details={"field": field, "scale": scale}
        )
    if amount.adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidAmountError(f"{field} is too large", details={"field": field})
    return amount


def quantum(scale: int) -> Decimal:
    """The smallest unit of an asset with ``scale`` decimals (e.g. 0.01 for USD)."""
    return Decimal(1).scaleb(-scale)


def round_in_platform_favour(amount: Decimal, scale: int, *, charge: bool) -> Decimal:
    """Round to ``scale``: charges round up, payouts round down (at most one minor unit)."""
    return amount.quantize(quantum(scale), rounding=ROUND_UP if charge else ROUND_DOWN)


def round_for_display(amount: Decimal, scale: int) -> Decimal:
    """``amount`` at ``scale`` decimals, half to even — named, not taken from the decimal
    context, which a library may change under us (ccxt sets half-up on the caller's)."""
    return amount.quantize(quantum(scale), rounding=ROUND_HALF_EVEN)


def format_amount(amount: Decimal, scale: int) -> str:
    """The JSON form of an amount: a string with exactly ``scale`` decimals."""
    return str(round_for_display(amount, scale))
