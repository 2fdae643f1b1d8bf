"""Banking: deposits, withdrawals, P2P transfers, linked bank accounts, transaction history."""
