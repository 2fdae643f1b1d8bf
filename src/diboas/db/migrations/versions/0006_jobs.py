"""Durable jobs: PgQueuer's tables, installed in the application's own database.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries
from sqlalchemy import text
from sqlalchemy.util import await_only

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    bind.execute(text("SELECT 1"))  # join the migration's driver-level transaction
    driver_connection = bind.connection.dbapi_connection.driver_connection  # type: ignore[union-attr]
    await_only(Queries(AsyncpgDriver(driver_connection)).install())


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(text("SELECT 1"))
    driver_connection = bind.connection.dbapi_connection.driver_connection  # type: ignore[union-attr]
    await_only(Queries(AsyncpgDriver(driver_connection)).uninstall())
