"""Market response bodies, and the ``as_of`` instant that price and balance reads accept."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel

from diboas.kit.errors import InvalidRequestError

# The longest ISO 8601 date-time with microseconds and an offset is 32 characters.
AS_OF_MAX_LENGTH = 64

# RFC 3339's profile of ISO 8601 (the zone checked separately, for a precise message).
# datetime.fromisoformat alone is too lenient: it ignores a trailing NUL, for one.
_INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?",
    re.ASCII,
)


class PriceOut(BaseModel):
    """An asset's price in USD (a decimal string) at an instant: ``priced_at`` is when the
    market data was observed, ``stale`` whether that is older than the allowed age."""

    asset: str
    price_usd: str
    as_of: datetime
    priced_at: datetime | None = None
    stale: bool = False


def usd_text(value: Decimal) -> str:
    """A USD price as text: at least the two decimals of a cent, more when the price has them."""
    exponent = value.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < -2 else 2
    return f"{value:.{decimals}f}"


def _iso_instant(value: str) -> datetime | None:
    if not _INSTANT.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:  # well-formed but impossible, e.g. 30 February
        return None


def parse_as_of(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """The instant named by an ``as_of`` query parameter, in UTC (None when absent).

    ISO 8601 with a time zone (``Z`` or an offset; a ``+`` must be sent as ``%2B``), not
    after ``now``: an answer about the future could change, so it is refused. Anything
    else is a 422 naming the field.
    """
    if value is None:
        return None
    details = {"field": "as_of"}
    parsed = _iso_instant(value)
    if parsed is None:
        raise InvalidRequestError(
            "as_of must be an ISO 8601 date and time with a time zone, e.g. 2025-01-31T12:00:00Z"
            " (a + in a query string is sent as %2B)",
            details=details,
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidRequestError("as_of needs a time zone (Z or an offset)", details=details)
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidRequestError("as_of is out of range", details=details) from None
    if instant > (now or datetime.now(UTC)):
        raise InvalidRequestError("as_of cannot be in the future", details=details)
    return instant
