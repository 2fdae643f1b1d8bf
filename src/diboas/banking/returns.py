"""Returned bank debits (ACH returns): read from the bank rails' returns report, each turned
into a reversal of the deposit it had credited (``service.reversals``), once."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository
from diboas.banking.service import reversals
from diboas.banking.service.reversals import Reversal
from diboas.db.transactions import run_in_transaction
from diboas.orchestration.jobs import JobContext, periodic
from diboas.providers.payments import PaymentReturn, default_payment_provider

log = structlog.get_logger(__name__)


@periodic("banking.ach_returns", every=lambda settings: settings.ach_returns_poll_seconds)
async def process_returns(context: JobContext) -> None:
    """Reverse every returned debit not reversed yet."""
    provider = context.services.get("payments") or default_payment_provider(context.settings)
    for returned in await provider.returns():

        async def reverse(session: AsyncSession, returned: PaymentReturn = returned) -> str:
            deposit_id = await repository.transaction_id_for_provider_reference(
                session, provider.name, returned.reference
            )
            if deposit_id is None:
                return "unknown"
            deposit = await repository.get_transaction(session, deposit_id)
            if deposit is None or deposit.status != "completed":
                return "not_settled"  # a debit still pending settles (or fails) first
            done = await reversals.reverse_deposit(
                session,
                Reversal(
                    deposit_id=deposit_id,
                    amount=returned.amount,
                    reference=returned.reference,
                    reason_code=returned.code,
                    reason=returned.message,
                ),
            )
            return "reversed" if done is not None else "already_reversed"

        outcome = await run_in_transaction(
            context.sessions, reverse, max_retries=context.settings.db_max_retries
        )
        if outcome == "reversed":
            log.warning("bank debit returned: deposit reversed", reference=returned.reference)
