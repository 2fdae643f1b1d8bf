"""Authentication: sessions, refresh tokens, one-time tokens; KYC fields on users.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from diboas.db.migrate import run_sql_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_script("diboas.identity.sql", "0003_auth.sql")


def downgrade() -> None:
    raise RuntimeError("this migration keeps financial records and cannot be downgraded")
