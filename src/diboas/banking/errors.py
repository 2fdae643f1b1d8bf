"""Banking's refusals, each with its HTTP status and stable code."""

from __future__ import annotations

from diboas.kit.errors import ConflictError, DomainError, InvalidRequestError, NotFoundError


class UnsupportedCurrencyError(DomainError):
    """Banking moves US dollars only, for now."""

    status_code = 422
    code = "unsupported_currency"


class RecipientNotFoundError(NotFoundError):
    """No user with this email can receive a transfer."""

    code = "recipient_not_found"


class SelfTransferError(DomainError):
    """A transfer to oneself."""

    status_code = 422
    code = "self_transfer"


class BankAccountNotFoundError(NotFoundError):
    """No linked, active bank account of the caller has this id."""

    code = "bank_account_not_found"


class BankAccountExistsError(ConflictError):
    """This bank account is already linked."""

    code = "bank_account_exists"


class BankAccountRequiredError(InvalidRequestError):
    """An ACH movement needs a linked bank account."""

    code = "bank_account_required"


class AmountTooSmallError(DomainError):
    """The fee would take the whole amount."""

    status_code = 422
    code = "amount_too_small"


class InvalidCursorError(InvalidRequestError):
    """A pagination cursor this API did not hand out."""

    code = "invalid_cursor"


class AccountFrozenError(DomainError):
    """The customer owes the platform (a reversal took back money already spent): no money
    leaves until the debt is paid; incoming money pays it first."""

    status_code = 403
    code = "account_frozen"


class NotReversibleError(ConflictError):
    """Only a completed deposit can be refunded or reversed."""

    code = "not_reversible"
