"""The strategy catalog: APY from the vault's share price history, and the risk rule.

APY: the vault's share price now against the oldest price seen within
``DIBOAS_DEFI_APY_WINDOW_DAYS``, annualised (simple, not compounded). Until the platform has
watched the vault for ``DIBOAS_DEFI_APY_MIN_HISTORY_SECONDS`` the strategy's configured
figure is shown instead; ``apy_source`` says which (``share_price_history`` or
``configured``).

Risk: a user with no profile may invest in strategies of risk score 2 or less; above their
profile's maximum (or above 2 without one) the request must acknowledge the risk, and the
acknowledgement is written to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.defi import repository_reports as reports
from diboas.defi.errors import RiskNotAcknowledgedError, StrategyUnavailableError
from diboas.defi.repository import Strategy
from diboas.providers.defi import VaultProtocol
from diboas.providers.resilience import ProviderError
from diboas.settings import Settings

DEFAULT_MAX_RISK = 2
_SECONDS_PER_YEAR = Decimal(365 * 24 * 3600)


@dataclass(frozen=True, slots=True)
class StrategyView:
    """A strategy with its APY and whether its vault is configured here."""

    strategy: Strategy
    apy: Decimal
    apy_source: str
    share_price: Decimal | None
    available: bool


def vault_of(vaults: dict[str, VaultProtocol], strategy: Strategy) -> VaultProtocol:
    """The strategy's vault, or 409 when none is configured for its slot."""
    vault = vaults.get(strategy.vault)
    if vault is None:
        raise StrategyUnavailableError(
            "this strategy's vault is not configured here", details={"strategy_id": strategy.id}
        )
    return vault


async def share_price(vault: VaultProtocol | None) -> Decimal | None:
    """The vault's share price now; None when it is not configured or cannot be reached (its
    strategy is then listed as unavailable rather than failing the catalog)."""
    if vault is None:
        return None
    try:
        return await vault.share_price()
    except ProviderError:
        return None


async def view(
    session: AsyncSession, settings: Settings, strategy: Strategy, price: Decimal | None
) -> StrategyView:
    """The strategy with its APY (derived when there is enough history, else configured);
    ``price`` is its vault's share price now, read before the transaction."""
    if price is None:
        return StrategyView(strategy, strategy.configured_apy, "configured", None, False)
    oldest = await reports.oldest_share_price(
        session, strategy.id, window_days=settings.defi_apy_window_days
    )
    if oldest is not None:
        at, old_price, now = oldest
        span = Decimal(str((now - at).total_seconds()))
        if span >= settings.defi_apy_min_history_seconds and old_price > 0:
            apy = (price / old_price - 1) * _SECONDS_PER_YEAR / span
            return StrategyView(
                strategy, apy.quantize(Decimal("0.0001")), "share_price_history", price, True
            )
    return StrategyView(strategy, strategy.configured_apy, "configured", price, True)


def check_risk(strategy: Strategy, max_risk: int | None, *, acknowledged: bool) -> tuple[int, bool]:
    """The limit that applied and whether an acknowledgement was needed; refuses a strategy
    above the limit that was not acknowledged."""
    limit = DEFAULT_MAX_RISK if max_risk is None else max_risk
    needed = strategy.risk_score > limit
    if needed and not acknowledged:
        raise RiskNotAcknowledgedError(
            "this strategy is riskier than your risk profile accepts; "
            'send "acknowledge_risk": true to invest anyway',
            details={
                "strategy_id": strategy.id,
                "risk_score": strategy.risk_score,
                "max_risk_score": limit,
                "risk_profile": "default" if max_risk is None else "set",
            },
        )
    return limit, needed
