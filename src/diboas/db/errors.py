"""Reading PostgreSQL errors through SQLAlchemy's wrapping."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

# Errors after which running the whole transaction again is correct and safe.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, or None for anything else."""
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return None


def is_retryable(exc: BaseException) -> bool:
    """True for a deadlock or a serialization failure."""
    return sqlstate(exc) in RETRYABLE_SQLSTATES


def error_detail(exc: BaseException) -> str | None:
    """The DETAIL line PostgreSQL attached to the error, if any."""
    if isinstance(exc, DBAPIError):
        cause = getattr(exc.orig, "__cause__", None)
        detail = getattr(cause, "detail", None) or getattr(exc.orig, "detail", None)
        return str(detail) if detail else None
    return None


def error_message(exc: BaseException) -> str:
    """PostgreSQL's own message, without SQLAlchemy's decoration."""
    if isinstance(exc, DBAPIError):
        cause = getattr(exc.orig, "__cause__", None)
        message = getattr(cause, "message", None)
        if message:
            return str(message)
    return str(exc)
