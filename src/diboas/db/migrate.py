"""Schema migrations (Alembic) and the monthly partitions they are followed by."""

from __future__ import annotations

from datetime import date
from importlib.resources import files
from pathlib import Path

from alembic import command, op
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

from diboas.db.urls import async_url

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Tables partitioned by month on created_at; each gets partitions created ahead of time.
PARTITIONED_TABLES = ("entries", "postings", "audit_log", "transactions", "saga_steps")


def alembic_config(connection: Connection | None = None) -> Config:
    """The Alembic configuration of the package's own migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def run_sql_script(package: str, name: str) -> None:
    """Run a multi-statement SQL file of ``package`` inside the current migration.

    Prepared statements take one statement each, so the script goes through asyncpg's
    simple-query path on the migration's own connection (and transaction).
    """
    bind = op.get_bind()
    bind.execute(text("SELECT 1"))  # opens the driver-level transaction the script joins
    script = files(package).joinpath(name).read_text(encoding="utf-8")
    driver_connection = bind.connection.dbapi_connection.driver_connection  # type: ignore[union-attr]
    await_only(driver_connection.execute(script))


def _upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


async def ensure_partitions(
    connection: AsyncConnection, *, months_ahead: int, today: date | None = None
) -> int:
    """Create the monthly partitions from last month to ``months_ahead`` months ahead."""
    start = today or date.today()  # noqa: DTZ011 - partitions are cut on server-side UTC months
    first = date(start.year - (start.month == 1), (start.month - 2) % 12 + 1, 1)
    created = 0
    for table in PARTITIONED_TABLES:
        result = await connection.execute(
            text("SELECT ensure_monthly_partitions(CAST(:t AS regclass), :first, :months)"),
            {"t": table, "first": first, "months": months_ahead + 2},
        )
        created += int(result.scalar_one())
    return created


async def upgrade(url: str | URL, *, revision: str = "head", months_ahead: int = 3) -> None:
    """Bring the database at ``url`` to ``revision`` and make sure partitions exist ahead."""
    engine = create_async_engine(async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_upgrade, revision)
            await conn.commit()
            await ensure_partitions(conn, months_ahead=months_ahead)
            await conn.commit()
    finally:
        await engine.dispose()
