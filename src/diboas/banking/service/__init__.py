"""Banking's services: deposits and withdrawals (``movements``), P2P transfers
(``transfers``), their settlement by jobs (``settlement``), linked bank accounts and
transaction history.

Services take the session and never commit; the request or job scope does.
"""

from __future__ import annotations

from diboas.banking.service import bank_accounts, history, settlement
from diboas.banking.service.common import (
    DEPOSIT_SETTLE_JOB,
    PAYOUT_JOB,
    Movement,
    bank_account_out,
    count_status,
    transaction_out,
)
from diboas.banking.service.movements import create_deposit, create_withdrawal
from diboas.banking.service.transfers import create_transfer

__all__ = [
    "DEPOSIT_SETTLE_JOB",
    "PAYOUT_JOB",
    "Movement",
    "bank_account_out",
    "bank_accounts",
    "count_status",
    "create_deposit",
    "create_transfer",
    "create_withdrawal",
    "history",
    "settlement",
    "transaction_out",
]
