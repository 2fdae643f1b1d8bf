"""The double-entry ledger: assets, accounts, balances, entries, postings, holds, idempotency.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from diboas.db.migrate import run_sql_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_script("diboas.ledger.sql", "0001_ledger.sql")


def downgrade() -> None:
    # The ledger is append-only: there is no going back from it without losing history.
    raise RuntimeError("the ledger migration cannot be downgraded")
