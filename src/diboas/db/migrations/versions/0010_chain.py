"""Chain custody: custodial wallets (sealed keys), chain deposits, the watcher's cursor.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

from __future__ import annotations

from diboas.db.migrate import run_sql_script

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_script("diboas.chain.sql", "0010_chain.sql")


def downgrade() -> None:
    raise RuntimeError("this migration keeps custody records and cannot be downgraded")
