"""Price-locked trade quotes: route, price, fee, and the hold that reserves the money.

A quote is made in two steps. ``price_trade`` asks the venues (network calls, no database)
and ranks them; ``lock_quote`` then, in the request's transaction, prices the fee, places the
hold — USD + fee on the banking balance for a buy, the quantity of the asset on the
investing balance for a sell — and stores the quote with the hold's expiry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_UP, Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance.limits import EmailVerificationRequiredError, KycRequiredError
from diboas.fees import service as fees
from diboas.identity.repository import User
from diboas.investing import repository
from diboas.investing.repository import TradeQuote
from diboas.kit.errors import DomainError, InvalidAmountError
from diboas.kit.money import parse_amount
from diboas.ledger import holds
from diboas.ledger import service as ledger
from diboas.ledger.models import Domain, OwnerType
from diboas.providers.exchange import USD_CENT, Exchange, Side
from diboas.providers.exchange_routing import Route, best_route
from diboas.providers.resilience import Failover
from diboas.settings import Settings

USD = "USD"
USD_SCALE = 2
# The venues' lot size: quantities are traded in whole satoshi-sized steps.
LOT = Decimal("0.00000001")


class UnsupportedAssetError(DomainError):
    """The asset is not traded here."""

    status_code = 422
    code = "unsupported_asset"


class FeeIncreasedError(DomainError):
    """The trade's fee now is higher than the one the customer accepted."""

    status_code = 409
    code = "fee_increased"


class AmountTooSmallError(DomainError):
    """The trade is smaller than its fee, or than one lot."""

    status_code = 422
    code = "amount_too_small"


@dataclass(frozen=True, slots=True)
class TradeRequest:
    """A validated trade: side, asset, and exactly one of a USD amount or a quantity."""

    side: Side
    asset: str
    amount_usd: Decimal | None
    quantity: Decimal | None


@dataclass(frozen=True, slots=True)
class PricedTrade:
    """A trade priced on its route: what the user gets and pays, before the fee."""

    request: TradeRequest
    route: Route
    quantity: Decimal
    amount_usd: Decimal


def tradable(venues: Failover[Exchange]) -> set[str]:
    """Assets some configured venue trades."""
    return {a for slot in venues.slots for a in slot.implementation.assets()}


def parse_trade(
    venues: Failover[Exchange],
    *,
    side: str,
    asset: str,
    amount_usd: str | None,
    quantity: str | None,
) -> TradeRequest:
    """Check a trade's asset and amounts (422 for anything unusable)."""
    if asset not in tradable(venues):
        raise UnsupportedAssetError(
            f"{asset} is not traded here",
            details={"field": "asset", "supported": sorted(tradable(venues))},
        )
    usd = None if amount_usd is None else parse_amount(amount_usd, USD_SCALE, field="amount_usd")
    qty = None
    if quantity is not None:
        qty = parse_amount(quantity, 18, field="quantity")
        if qty != qty.quantize(LOT):
            raise InvalidAmountError(
                f"quantity must be a multiple of {LOT}", details={"field": "quantity"}
            )
    return TradeRequest(Side(side), asset, usd, qty)


def max_data_age(settings: Settings) -> timedelta:
    """How old the market data a quote is priced from may be."""
    return timedelta(seconds=settings.market_max_price_age_seconds)


async def price_trade(
    venues: Failover[Exchange], request: TradeRequest, *, max_age: timedelta | None = None
) -> PricedTrade:
    """Rank the venues for the trade and take the cheapest (network calls; no database);
    with ``max_age``, books older than that are never used (503 ``market_data_stale``)."""
    route = await best_route(
        venues,
        request.asset,
        request.side,
        quantity=request.quantity,
        quote_amount=request.amount_usd,
        max_age=max_age,
    )
    chosen = route.chosen
    if request.amount_usd is not None:
        # Buying by amount: the user spends exactly that, for the whole lots it buys.
        return PricedTrade(request, route, chosen.quantity, request.amount_usd)
    assert request.quantity is not None  # noqa: S101 - one of the two is set
    return PricedTrade(request, route, request.quantity, chosen.cost)


def ensure_may_trade(settings: Settings, user: User) -> None:
    """Trading moves money: a verified email where the platform requires it, KYC tier 1+."""
    if settings.email_verification_required and user.email_verified_at is None:
        raise EmailVerificationRequiredError("verify your email address before trading")
    if user.kyc_tier < 1:
        raise KycRequiredError(
            "complete identity verification (KYC) before trading",
            details={"kyc_tier": user.kyc_tier},
        )


@dataclass(frozen=True, slots=True)
class TradeFee:
    """A trade's fee in USD: the schedule's platform (and network) share and the venue's."""

    platform: Decimal
    provider: Decimal
    network: Decimal

    @property
    def total(self) -> Decimal:
        return self.platform + self.provider + self.network


async def trade_fee(session: AsyncSession, user: User, priced: PricedTrade) -> TradeFee:
    """The fee of a priced trade: the schedule's for the side, plus the chosen venue's."""
    schedule = await fees.compute(
        session,
        operation=priced.request.side.value,
        amount=priced.amount_usd,
        currency=USD,
        tier=user.kyc_tier,
        provider=priced.route.chosen.venue,
    )
    provider_fee = priced.route.chosen.fee.quantize(USD_CENT, rounding=ROUND_UP)
    return TradeFee(schedule.platform, provider_fee, schedule.network)


async def lock_quote(
    session: AsyncSession,
    settings: Settings,
    *,
    user: User,
    priced: PricedTrade,
    max_fee: Decimal | None = None,
    transaction_id: uuid.UUID | None = None,
) -> TradeQuote:
    """Fee the trade, hold the money (or the asset) and store the quote. ``max_fee``: refuse
    (``fee_increased``) a fee above what the customer accepted; ``transaction_id``: the
    transaction the trade settles (a deposit-then-buy made it when it was accepted)."""
    ensure_may_trade(settings, user)
    request = priced.request
    fee = await trade_fee(session, user, priced)
    total_fee = fee.total
    if max_fee is not None and total_fee > max_fee:
        raise FeeIncreasedError(
            "the trade's fee is now higher than the one accepted",
            details={"fee": str(total_fee), "accepted_fee": str(max_fee)},
        )
    if request.side is Side.SELL and total_fee >= priced.amount_usd:
        raise AmountTooSmallError(
            "the fee would take the whole sale",
            details={"amount_usd": str(priced.amount_usd), "fee": str(total_fee)},
        )
    expires_at = (await session.execute(text("SELECT now()"))).scalar_one() + timedelta(
        seconds=settings.investing_quote_ttl_seconds
    )
    quote_id = uuid.uuid4()
    if request.side is Side.BUY:
        account = await ledger.customer_account(
            session, owner_type=OwnerType.USER, owner_id=user.id, domain=Domain.BANKING, asset=USD
        )
        amount = priced.amount_usd + total_fee
    else:
        account = await ledger.customer_account(
            session,
            owner_type=OwnerType.USER,
            owner_id=user.id,
            domain=Domain.INVESTING,
            asset=request.asset,
        )
        amount = priced.quantity
    hold = await holds.place_hold(
        session,
        account=account,
        amount=amount,
        expires_at=expires_at,
        reference=f"quote:{quote_id}",
    )
    values: dict[str, Any] = {
        "id": quote_id,
        "user_id": user.id,
        "side": request.side.value,
        "asset": request.asset,
        "requested": "amount_usd" if request.amount_usd is not None else "quantity",
        "quantity": priced.quantity,
        "amount_usd": priced.amount_usd,
        "price": (priced.amount_usd / priced.quantity).quantize(LOT),
        "platform_fee": fee.platform,
        "provider_fee": fee.provider,
        "network_fee": fee.network,
        "total_fee": total_fee,
        "venue": priced.route.chosen.venue,
        "route": priced.route.as_dict(),
        "hold_id": hold.id,
        "expires_at": expires_at,
        "transaction_id": transaction_id,
    }
    return await repository.insert_quote(session, values)


async def trade_route(
    venues: Failover[Exchange],
    operation: str,
    asset: str,
    currency: str,
    amount: str,
    *,
    max_age: timedelta | None = None,
) -> tuple[dict[str, Any], Decimal]:
    """For the fee service: the cheapest healthy venue for a USD-sized buy or sell of
    ``asset``, as a route (provider, reason, every candidate's cost) and that venue's fee;
    never from market data older than ``max_age`` (503 ``market_data_stale``)."""
    if currency != USD:
        raise UnsupportedAssetError(
            "a trade's fee is quoted in USD", details={"field": "currency", "supported": [USD]}
        )
    request = parse_trade(venues, side=operation, asset=asset, amount_usd=amount, quantity=None)
    route = await best_route(
        venues, asset, Side(operation), quote_amount=request.amount_usd, max_age=max_age
    )
    return route.as_dict(), route.chosen.fee.quantize(USD_CENT, rounding=ROUND_UP)
