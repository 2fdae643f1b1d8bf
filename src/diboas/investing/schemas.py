"""Investing request and response bodies. Amounts travel as decimal strings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, Strict, StringConstraints, model_validator

from diboas.defi.schemas import FundingIn
from diboas.kit.schemas import StrictModel

Id = Annotated[uuid.UUID, Strict(False)]
Amount = Annotated[str, Field(min_length=1, max_length=40)]
AssetCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,12}$"), Field(examples=["BTC"])]
Side = Literal["buy", "sell"]


class TradeIn(StrictModel):
    """A trade: buy by ``amount_usd`` (what to spend, before the fee) or by ``quantity``;
    sell by ``quantity`` (the holding goes down by exactly that; the fee is taken in USD)."""

    side: Side
    asset: AssetCode
    amount_usd: Amount | None = None
    quantity: Amount | None = None

    @model_validator(mode="after")
    def _one_size(self) -> Self:
        if (self.amount_usd is None) == (self.quantity is None):
            raise ValueError("give exactly one of amount_usd or quantity")
        if self.side == "sell" and self.amount_usd is not None:
            raise ValueError("a sell is by quantity")
        return self


class QuoteIn(TradeIn):
    """Ask for a price-locked quote: the price holds, and the money (or the asset, for a
    sell) is held, until ``expires_at``."""


class OrderIn(StrictModel):
    """Place an order: either present a ``quote_id`` (its locked price and fee are used), or
    describe the trade (it is quoted and executed at once). With ``funding``, a buy by
    ``amount_usd`` is paid by a card or ACH deposit made in the same request: the buy happens
    once the deposit settles, at a price at most ``max_slippage_bps`` above the one quoted
    now (default ``DIBOAS_INVESTING_FUNDED_MAX_SLIPPAGE_BPS``) and a fee no higher than
    stated — or not at all, the deposit staying in the banking balance."""

    side: Side
    asset: AssetCode
    amount_usd: Amount | None = None
    quantity: Amount | None = None
    quote_id: Id | None = None
    funding: FundingIn | None = None
    max_slippage_bps: Annotated[int, Field(ge=0, le=1000)] | None = None

    @model_validator(mode="after")
    def _one_size(self) -> Self:
        if (self.amount_usd is None) == (self.quantity is None):
            raise ValueError("give exactly one of amount_usd or quantity")
        if self.side == "sell" and self.amount_usd is not None:
            raise ValueError("a sell is by quantity")
        if self.funding is not None and (self.side != "buy" or self.amount_usd is None):
            raise ValueError("a funded order is a buy by amount_usd")
        if self.funding is not None and self.quote_id is not None:
            raise ValueError("a funded order is quoted when its deposit settles, not before")
        if self.max_slippage_bps is not None and self.funding is None:
            raise ValueError("max_slippage_bps is for a funded order")
        return self


class RouteCostOut(BaseModel):
    """What one venue would have cost, in USD."""

    venue: str
    fee: str
    spread: str
    slippage: str
    network: str
    total: str


class RouteOut(BaseModel):
    """The venue chosen and why, with every candidate's cost."""

    provider: str
    reason: str
    candidates: list[RouteCostOut]
    skipped: dict[str, str]


class FeeOut(BaseModel):
    """The fee by component, in USD."""

    platform: str
    provider: str
    network: str


class QuoteOut(BaseModel):
    """A price-locked quote. For a buy, ``amount_usd`` + ``fee`` is held from the banking
    balance; for a sell, ``quantity`` of the asset is held. ``status``: open, executed,
    expired or failed."""

    quote_id: uuid.UUID
    side: Side
    asset: str
    quantity: str
    price: str
    amount_usd: str
    fee: str
    fee_breakdown: FeeOut
    total_usd: str
    route: RouteOut
    hold_id: uuid.UUID
    status: str
    expires_at: datetime
    # Once executed: the trade's transaction (also how a client learns the outcome of an
    # order answered 503 ``exchange_unavailable`` while the venue's answer is checked).
    transaction_id: uuid.UUID | None = None


class OrderOut(BaseModel):
    """An executed order: ``id`` is its transaction (in ``GET /api/v1/transactions``),
    ``fee`` in USD."""

    id: uuid.UUID
    order_id: uuid.UUID
    quote_id: uuid.UUID
    status: str
    side: Side
    asset: str
    quantity: str
    price: str
    amount_usd: str
    fee: str
    fee_breakdown: FeeOut
    total_usd: str
    venue: str
    route: RouteOut
    created_at: datetime


class FundedOrderOut(BaseModel):
    """A deposit-then-buy as accepted: ``id`` is the buy's transaction (poll it at
    ``/api/v1/transactions/{id}``: pending until the deposit settles and the buy is made —
    completed — or refused — failed, its reason saying the deposit stays in the banking
    balance). ``fee`` is the most the buy will cost in fees, in USD."""

    id: uuid.UUID
    status: str
    type: str
    asset: str
    amount_usd: str
    fee: str
    fee_breakdown: FeeOut
    reference_price: str
    max_price: str
    max_slippage_bps: int
    estimated_quantity: str
    funding_transaction_id: uuid.UUID
    deposit_amount: str
    created_at: datetime


class HoldingOut(BaseModel):
    """One asset held: quantity, FIFO cost basis, value and profit and loss, in USD."""

    asset: str
    quantity: str
    cost_basis: str
    average_cost: str | None
    price: str
    value_usd: str
    unrealised_pnl: str
    realised_pnl: str
    priced_at: datetime | None = Field(default=None, description="When the price was observed")
    price_stale: bool = Field(
        default=False, description="Valued with a price older than the allowed age"
    )


class PortfolioOut(BaseModel):
    """Every asset held in Investing (and any with realised P&L), with totals, valued with
    the same market data the quotes use."""

    holdings: list[HoldingOut]
    total_value_usd: str
    total_cost_basis: str
    unrealised_pnl: str
    realised_pnl: str
    as_of: datetime
    price_stale: bool = False
