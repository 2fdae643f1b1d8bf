"""Business: organisations, members, API keys, IP allow-lists, payout batches.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""

from __future__ import annotations

from diboas.db.migrate import run_sql_script

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_script("diboas.business.sql", "0013_business.sql")


def downgrade() -> None:
    raise RuntimeError("this migration keeps financial records and cannot be downgraded")
