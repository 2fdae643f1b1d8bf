"""Alembic environment. Migrations run through `diboas migrate` (diboas.db.migrate), which
hands over a live connection of the project's async engine; there is no offline mode."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run migrations with `diboas migrate`")

context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
