"""Banking: transactions, bank accounts, fee schedule and quotes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from diboas.db.migrate import run_sql_script

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_script("diboas.banking.sql", "0005_banking.sql")


def downgrade() -> None:
    raise RuntimeError("this migration keeps financial records and cannot be downgraded")
