"""Turning the ledger's database refusals into domain errors."""

from __future__ import annotations

import json
from decimal import Decimal

from diboas.db.errors import error_detail, error_message, sqlstate
from diboas.kit.errors import (
    DomainError,
    InsufficientFundsError,
    InvalidAmountError,
    LedgerRuleError,
)
from diboas.observability.metrics import LEDGER_REFUSALS

# SQLSTATEs raised by sql/0001_ledger.sql.
UNBALANCED = "LD001"
APPEND_ONLY = "LD002"
UNKNOWN_ACCOUNT = "LD004"
TOO_MANY_DECIMALS = "LD005"
INSUFFICIENT_FUNDS = "LD010"
CHECK_VIOLATION = "23514"


def translate(exc: BaseException) -> DomainError | None:
    """The domain error for a ledger refusal, or None if ``exc`` is not one."""
    state = sqlstate(exc)
    if state == INSUFFICIENT_FUNDS:
        LEDGER_REFUSALS.labels("insufficient_funds").inc()
        detail = json.loads(error_detail(exc) or "{}")
        details = {
            "account_id": detail.get("account_id"),
            "asset": detail.get("asset"),
            "available": _money(detail.get("available")),
            "requested": _money(detail.get("requested")),
        }
        return InsufficientFundsError("insufficient funds", details=details)
    if state == CHECK_VIOLATION and "balance_non_negative" in str(exc):
        LEDGER_REFUSALS.labels("insufficient_funds").inc()
        return InsufficientFundsError("insufficient funds")
    if state == TOO_MANY_DECIMALS:
        LEDGER_REFUSALS.labels("too_many_decimals").inc()
        return InvalidAmountError(error_message(exc))
    if state in (UNBALANCED, UNKNOWN_ACCOUNT, APPEND_ONLY):
        LEDGER_REFUSALS.labels(
            {UNBALANCED: "unbalanced", UNKNOWN_ACCOUNT: "unknown_account"}.get(state, "append_only")
        ).inc()
        return LedgerRuleError(error_message(exc))
    return None


def _money(value: object) -> str | None:
    return None if value is None else str(Decimal(str(value)))
