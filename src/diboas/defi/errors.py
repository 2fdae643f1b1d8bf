"""DeFi refusals (each a 4xx in the one error format)."""

from __future__ import annotations

from diboas.kit.errors import DomainError, NotFoundError


class StrategyNotFoundError(NotFoundError):
    """No such strategy (or it is not offered)."""

    code = "strategy_not_found"


class StrategyUnavailableError(DomainError):
    """The strategy's vault is not configured here (e.g. no growth vault on this chain)."""

    status_code = 409
    code = "strategy_unavailable"


class PositionNotFoundError(NotFoundError):
    """No such position (another user's is not found either)."""

    code = "position_not_found"


class RiskNotAcknowledgedError(DomainError):
    """The strategy is riskier than the user's profile accepts and the request did not
    acknowledge it (``"acknowledge_risk": true``)."""

    status_code = 422
    code = "risk_acknowledgement_required"


class BelowMinimumError(DomainError):
    """Less than the strategy's minimum."""

    status_code = 422
    code = "amount_below_minimum"


class PositionLockedError(DomainError):
    """The position is still in its lock-up period."""

    status_code = 422
    code = "position_locked"


class PositionNotOpenError(DomainError):
    """The position cannot be withdrawn from now (pending deposit, closed, or all of it is
    already being withdrawn)."""

    status_code = 409
    code = "position_not_open"


class ExceedsPositionError(DomainError):
    """More than the position is worth."""

    status_code = 422
    code = "amount_exceeds_position"


class FeeExceedsAmountError(DomainError):
    """The fee and gas would take the whole amount."""

    status_code = 422
    code = "amount_too_small"


class VaultRefusedError(DomainError):
    """The vault would refuse the operation (found while estimating its gas)."""

    status_code = 422
    code = "vault_refused"


class VaultUnavailableError(DomainError):
    """The vault (its chain) cannot be reached now; nothing was done."""

    status_code = 503
    code = "vault_unavailable"
