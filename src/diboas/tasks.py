"""Every module that registers durable jobs, imported by the worker."""

from __future__ import annotations

from diboas.banking import refunds as _refunds  # noqa: F401
from diboas.banking import returns as _returns  # noqa: F401
from diboas.banking import tasks as _banking  # noqa: F401
from diboas.chain import tasks as _chain  # noqa: F401
from diboas.defi import tasks as _defi  # noqa: F401
from diboas.investing import tasks as _investing  # noqa: F401
from diboas.notifications import email as _email  # noqa: F401
from diboas.orchestration import reconciliation as _reconciliation  # noqa: F401

__all__: list[str] = []
