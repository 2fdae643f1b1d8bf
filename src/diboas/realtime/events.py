"""Recording updates while a transaction runs, publishing them once it has committed.

Services call ``transaction_changed`` / ``balance_changed`` with their session; nothing is sent
then. ``db.transactions.run_in_transaction`` runs the session's after-commit hooks once the
commit succeeded, so a rolled-back change is never announced, and a unit of work that touches a
user's balance several times announces it once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.transactions import after_commit
from diboas.realtime.hub import Event, Hub

HUB_KEY = "realtime_hub"
_PENDING = "realtime_pending"


def _pending(session: AsyncSession) -> dict[uuid.UUID, dict[str, Event]] | None:
    hub: Hub | None = session.info.get(HUB_KEY)
    if hub is None:
        return None  # no live updates configured for these sessions (a CLI tool, say)
    pending: dict[uuid.UUID, dict[str, Event]] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = {}

        async def publish() -> None:
            for user_id, events in pending.items():
                await hub.publish(user_id, list(events.values()))

        after_commit(session, publish)
    return pending


def transaction_changed(session: AsyncSession, user_id: uuid.UUID, summary: dict[str, Any]) -> None:
    """A user's transaction was created or changed status (the last change wins)."""
    pending = _pending(session)
    if pending is not None:
        event = {"type": "transaction", "transaction": summary}
        pending.setdefault(user_id, {})[f"transaction:{summary['id']}"] = event


def balance_changed(session: AsyncSession, user_id: uuid.UUID) -> None:
    """A user's balance moved (read it again: ``GET /api/v1/balances``)."""
    pending = _pending(session)
    if pending is not None:
        pending.setdefault(user_id, {})["balance"] = {"type": "balance"}
