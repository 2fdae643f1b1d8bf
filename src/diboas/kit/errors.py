"""Domain errors. Each carries its HTTP status and a stable code; one handler renders them
as ``{"error": {"code", "message", "details", "request_id"}}``."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """A refusal the caller can act on (never a bug): rendered as a 4xx."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidRequestError(DomainError):
    """A well-formed request whose values cannot be used."""

    status_code = 422
    code = "invalid_request"


class NotFoundError(DomainError):
    """The resource does not exist or is not the caller's."""

    status_code = 404
    code = "not_found"


class ConflictError(DomainError):
    """The request collides with the current state."""

    status_code = 409
    code = "conflict"


class InvalidAmountError(DomainError):
    """An amount that is not a positive decimal within its asset's scale."""

    status_code = 422
    code = "invalid_amount"


class InsufficientFundsError(DomainError):
    """The movement would take an account below zero."""

    status_code = 422
    code = "insufficient_funds"


class LedgerRuleError(DomainError):
    """The ledger refused an entry that breaks one of its rules (unbalanced, unknown account)."""

    status_code = 422
    code = "ledger_rule_violated"


class IdempotencyKeyInFlightError(ConflictError):
    """A request with this idempotency key is still being processed."""

    code = "idempotency_key_in_flight"


class IdempotencyKeyReusedError(DomainError):
    """This idempotency key was already used with a different request."""

    status_code = 422
    code = "idempotency_key_reused"
