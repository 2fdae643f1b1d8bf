"""Investing: trade quotes tied to holds, orders, FIFO lots and disposals.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from __future__ import annotations

from diboas.db.migrate import run_sql_script

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_script("diboas.investing.sql", "0009_investing.sql")


def downgrade() -> None:
    raise RuntimeError("this migration keeps financial records and cannot be downgraded")
