"""Database URLs: accepted in their plain ``postgresql://`` form, driven through asyncpg."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url


def async_url(url: str | URL) -> URL:
    """The SQLAlchemy URL for ``url`` with the project's driver (asyncpg)."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError(f"only PostgreSQL is supported, not {parsed.get_backend_name()!r}")
    return parsed.set(drivername="postgresql+asyncpg")


def plain_url(url: str | URL) -> str:
    """The libpq form of ``url`` (for asyncpg.connect, psql and pgbench)."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str | URL, database: str) -> URL:
    """The same server, another database."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(database=database)
