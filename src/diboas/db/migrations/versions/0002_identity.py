"""Users.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

from diboas.db.migrate import run_sql_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql_script("diboas.identity.sql", "0002_identity.sql")


def downgrade() -> None:
    op.execute("DROP TABLE users")
