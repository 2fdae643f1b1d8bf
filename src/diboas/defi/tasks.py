"""DeFi's durable jobs: the batched vault deposit, the withdrawal's redemption, resolving
either from the chain when its answer was lost, and the periodic yield booking. Each is
idempotent (see ``service.batches`` / ``service.redemptions``:
claims under row locks, final states checked first)."""

from __future__ import annotations

import uuid
from typing import Any

import structlog

from diboas.db.transactions import run_in_transaction
from diboas.defi.service import batches, chain_resolution, funding, redemptions, valuation
from diboas.defi.service.funding import DEPOSIT_BATCH_JOB
from diboas.defi.service.movements import WITHDRAW_JOB
from diboas.orchestration.jobs import JobContext, job, periodic

log = structlog.get_logger(__name__)


@job(DEPOSIT_BATCH_JOB)
async def deposit_batch(context: JobContext, payload: dict[str, Any]) -> None:
    batch_id = await batches.run_batch(
        context.sessions, context.services, context.settings, str(payload["strategy_id"])
    )
    if batch_id is not None:
        log.info("defi batch deposited", batch_id=str(batch_id))


@job(funding.FUND_JOB)
async def fund_investment(context: JobContext, payload: dict[str, Any]) -> None:
    transaction_id = uuid.UUID(str(payload["transaction_id"]))
    outcome = await run_in_transaction(
        context.sessions, lambda s: funding.fund(s, context.settings, transaction_id)
    )
    log.info("defi investment funding", transaction_id=str(transaction_id), outcome=outcome)


@job(WITHDRAW_JOB)
async def withdraw(context: JobContext, payload: dict[str, Any]) -> None:
    await redemptions.run_withdrawal(
        context.sessions,
        context.services,
        context.settings,
        uuid.UUID(str(payload["transaction_id"])),
    )


@job(batches.RESOLVE_BATCH_JOB)
async def resolve_batch(context: JobContext, payload: dict[str, Any]) -> None:
    outcome = await chain_resolution.resolve_batch(
        context.sessions, context.services, context.settings, payload
    )
    log.info("defi batch resolution", batch_id=str(payload["batch_id"]), outcome=outcome)


@job(redemptions.RESOLVE_WITHDRAWAL_JOB)
async def resolve_withdrawal(context: JobContext, payload: dict[str, Any]) -> None:
    outcome = await chain_resolution.resolve_withdrawal(
        context.sessions, context.services, context.settings, payload
    )
    log.info(
        "defi withdrawal resolution",
        transaction_id=str(payload["transaction_id"]),
        outcome=outcome,
    )


@periodic("defi.accrue_yield", every=lambda settings: settings.defi_accrual_interval_seconds)
async def accrue_yield(context: JobContext) -> None:
    """Book the yield of every open position (idempotent: a second run finds nothing new)."""
    await valuation.accrue(context.sessions, context.services, context.settings)
