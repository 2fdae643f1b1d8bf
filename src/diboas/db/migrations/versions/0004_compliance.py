"""Compliance: KYC submissions, sanctions list, audit log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from diboas.db.migrate import run_sql_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_script("diboas.compliance.sql", "0004_compliance.sql")


def downgrade() -> None:
    raise RuntimeError("this migration keeps financial records and cannot be downgraded")
