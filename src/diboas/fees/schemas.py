"""Fee request and response bodies. Amounts travel as decimal strings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from diboas.fees.schedule import ScheduleRow
from diboas.fees.service import Quote
from diboas.kit.money import format_amount
from diboas.kit.schemas import StrictModel, Text

Operation = Literal[
    "deposit", "withdrawal", "transfer", "buy", "sell", "defi_deposit", "defi_withdraw"
]
AssetCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,12}$")]


class QuoteIn(StrictModel):
    """A fee-quote request: what the movement is, how much, and in which currency or asset.

    ``currency`` and ``asset`` are two names for the same thing (what ``amount`` is counted
    in); exactly one must be given. ``amount`` is a decimal string, checked at that asset's
    scale. ``method`` (e.g. ``card`` or ``ach``) defaults as the movement itself would.
    """

    operation: Operation
    amount: str = Field(min_length=1, max_length=64)
    currency: AssetCode | None = None
    asset: AssetCode | None = None
    method: Text(32) | None = None  # type: ignore[valid-type]
    # For a buy or sell: the crypto asset traded. The quote then ranks the exchanges by total
    # cost for this amount and adds the chosen venue's fee (DESIGN §1, cheapest healthy route).
    trade_asset: AssetCode | None = None

    @model_validator(mode="after")
    def _exactly_one_denomination(self) -> QuoteIn:
        if (self.currency is None) == (self.asset is None):
            raise ValueError("give exactly one of currency or asset")
        if self.trade_asset is not None and self.operation not in ("buy", "sell"):
            raise ValueError("trade_asset is for buy and sell quotes")
        return self

    @property
    def denomination(self) -> str:
        """The currency or asset code the request names."""
        code = self.currency or self.asset
        assert code is not None  # noqa: S101 - the validator above guarantees one
        return code


class BreakdownOut(BaseModel):
    """A fee by component."""

    platform: str
    provider: str
    network: str


class RouteOut(BaseModel):
    """The provider the movement would go through, and why."""

    provider: str
    reason: str


class QuoteOut(BaseModel):
    """A fee quote: honoured exactly by a movement that presents ``quote_id`` before
    ``expires_at``."""

    quote_id: uuid.UUID
    operation: str
    method: str | None
    amount: str
    currency: str
    total_fee: str
    breakdown: BreakdownOut
    provider: str
    route: RouteOut
    expires_at: datetime

    @classmethod
    def of(cls, quote: Quote, scale: int) -> QuoteOut:
        """The response for an issued quote, amounts at the currency's scale."""
        fee = quote.fee
        return cls(
            quote_id=quote.id,
            operation=quote.operation,
            method=quote.method,
            amount=format_amount(quote.amount, scale),
            currency=quote.currency,
            total_fee=format_amount(fee.total, scale),
            breakdown=BreakdownOut(
                platform=format_amount(fee.platform, scale),
                provider=format_amount(fee.provider, scale),
                network=format_amount(fee.network, scale),
            ),
            provider=fee.provider_name,
            route=RouteOut(
                provider=str(quote.route.get("provider", fee.provider_name)),
                reason=str(quote.route.get("reason", "")),
            ),
            expires_at=quote.expires_at,
        )


class ScheduleRowOut(BaseModel):
    """One component of the fee schedule. ``percent`` is of the amount; ``fixed``,
    ``minimum`` and ``maximum`` (null: no cap) are in ``currency``; ``method`` null means
    any method."""

    operation: str
    method: str | None
    component: str
    percent: str
    fixed: str
    minimum: str
    maximum: str | None
    currency: str
    description: str

    @classmethod
    def of(cls, row: ScheduleRow) -> ScheduleRowOut:
        """The public form of a schedule row."""
        return cls(
            operation=row.operation,
            method=row.method,
            component=row.component,
            percent=f"{row.percent.normalize():f}",
            fixed=format_amount(row.fixed, row.scale),
            minimum=format_amount(row.minimum, row.scale),
            maximum=None if row.maximum is None else format_amount(row.maximum, row.scale),
            currency=row.currency,
            description=row.description,
        )
