"""Investing's durable jobs: check what a venue did with an order whose answer was lost.

``investing.reconcile_quote`` is staged (with a delay) when a venue call failed ambiguously
— a timeout or a 5xx after the retries — leaving the quote open and its money held. It asks
the venue for the order by the quote's client order id: an order found is settled exactly as
if the first answer had arrived; none releases the hold. Running it twice does nothing
twice: it works under the quote's row lock and only on an open quote. A venue that still
does not answer fails the job, which the queue retries with backoff.

``investing.fund_buy`` drives a deposit-then-buy (``service.funded``).
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.db.transactions import run_in_transaction
from diboas.investing.service import execution, funded, venues_for
from diboas.orchestration.jobs import JobContext, job

log = structlog.get_logger(__name__)


@job(execution.RECONCILE_JOB)
async def reconcile_quote(context: JobContext, payload: dict[str, Any]) -> None:
    venues = venues_for(context.services, context.settings)
    quote_id = uuid.UUID(payload["quote_id"])
    user_id = uuid.UUID(payload["user_id"])

    async def work(session: AsyncSession) -> str:
        return await execution.reconcile(session, venues, user_id=user_id, quote_id=quote_id)

    outcome = await run_in_transaction(context.sessions, work)
    log.info("quote reconciled", quote_id=str(quote_id), outcome=outcome)


@job(funded.FUND_BUY_JOB)
async def fund_buy(context: JobContext, payload: dict[str, Any]) -> None:
    """Drive a deposit-then-buy: wait for its deposit, then buy within its bounds or
    compensate (``service.funded``). Idempotent: every step works under the transaction's
    row lock and checks where the saga is first."""
    venues = venues_for(context.services, context.settings)
    transaction_id = uuid.UUID(str(payload["transaction_id"]))
    outcome = await funded.run(context.sessions, context.settings, venues, transaction_id)
    log.info("funded buy", transaction_id=str(transaction_id), outcome=outcome)
