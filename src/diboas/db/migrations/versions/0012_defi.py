"""DeFi: strategy catalog, risk profiles, positions, deposit batches, share prices.

Revision ID: 0012
Revises: 0010
Create Date: 2026-11-25
"""

from __future__ import annotations

from diboas.db.migrate import run_sql_script

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_script("diboas.defi.sql", "0012_defi.sql")


def downgrade() -> None:
    raise RuntimeError("this migration keeps financial records and cannot be downgraded")
