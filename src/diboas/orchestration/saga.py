"""Sagas: the persisted state machine of every money movement that involves a provider.

A deposit or a withdrawal is accepted (money reserved where it leaves), then the provider is
asked, then the ledger is settled — or the saga compensates (a withdrawal's hold is released)
or fails (a deposit credits nothing). Every step is appended to ``saga_steps`` in the same
database transaction as the change it describes, and the current state is kept on the
transaction row, so the history shows exactly what happened and a crash can never leave a
step recorded without its effect (or the other way round).

States and the moves allowed between them (anything else is a bug and raises):

- ``accepted`` → ``provider_requested``
- ``provider_requested`` → a provider answer: ``awaiting_provider`` (bank rails still working),
  ``awaiting_customer`` (3-D Secure), ``settled``, ``failed``, ``compensated``; or
  ``retrying`` (the provider refused to work for now: 429, connection refused), or
  ``ambiguous`` (the request may have reached the provider and its answer was lost: a
  timeout, a reset connection, a 5xx) — parked for the reconciliation job;
- ``provider_requested`` → itself: the same request again (a duplicate delivery, or a job
  picked up again after its worker died) — with the same idempotency key, so harmless;
- ``retrying`` → ``provider_requested`` (the job's next attempt);
- ``ambiguous`` → what the provider says when asked (any answer above), ``ambiguous`` again
  (it still cannot be reached), or ``provider_requested`` (it never saw the request);
- ``awaiting_provider`` / ``awaiting_customer`` → an answer, or themselves (asked again);
- ``settled`` → ``reversed`` (refund, chargeback, returned bank debit).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.orchestration import repository
from diboas.orchestration.repository import SagaStep


class SagaState(StrEnum):
    """Where a money movement's saga is."""

    ACCEPTED = "accepted"
    PROVIDER_REQUESTED = "provider_requested"
    RETRYING = "retrying"
    AMBIGUOUS = "ambiguous"
    AWAITING_PROVIDER = "awaiting_provider"
    AWAITING_CUSTOMER = "awaiting_customer"
    SETTLED = "settled"
    FAILED = "failed"
    COMPENSATED = "compensated"
    REVERSED = "reversed"


_ANSWERS = frozenset(
    {
        SagaState.AWAITING_PROVIDER,
        SagaState.AWAITING_CUSTOMER,
        SagaState.SETTLED,
        SagaState.FAILED,
        SagaState.COMPENSATED,
    }
)
_WAITING = _ANSWERS | {SagaState.AMBIGUOUS}

ALLOWED: dict[SagaState | None, frozenset[SagaState]] = {
    None: frozenset({SagaState.ACCEPTED}),
    SagaState.ACCEPTED: frozenset({SagaState.PROVIDER_REQUESTED}),
    # Requested again: a duplicate delivery, or the job retried after its worker died.
    SagaState.PROVIDER_REQUESTED: _ANSWERS
    | {SagaState.PROVIDER_REQUESTED, SagaState.RETRYING, SagaState.AMBIGUOUS},
    SagaState.RETRYING: frozenset({SagaState.PROVIDER_REQUESTED}),
    SagaState.AMBIGUOUS: _WAITING | {SagaState.PROVIDER_REQUESTED},
    SagaState.AWAITING_PROVIDER: _WAITING,
    SagaState.AWAITING_CUSTOMER: _WAITING,
    SagaState.SETTLED: frozenset({SagaState.REVERSED}),
    SagaState.FAILED: frozenset(),
    SagaState.COMPENSATED: frozenset(),
    SagaState.REVERSED: frozenset(),
}

FINAL = frozenset({SagaState.SETTLED, SagaState.FAILED, SagaState.COMPENSATED, SagaState.REVERSED})


class SagaTransitionError(RuntimeError):
    """A saga was asked to make a move its state machine does not have (a bug)."""


def can_move(current: str | None, to: SagaState) -> bool:
    """Whether a saga in ``current`` may move to ``to``."""
    return to in ALLOWED[None if current is None else SagaState(current)]


async def advance(
    session: AsyncSession,
    transaction_id: Any,
    created_at: Any,
    current: str | None,
    to: SagaState,
    **detail: Any,
) -> None:
    """Move the saga of a transaction (whose row the caller has locked) and record the step."""
    if not can_move(current, to):
        raise SagaTransitionError(f"saga of {transaction_id}: {current} -> {to} is not allowed")
    await repository.record_step(
        session, transaction_id, created_at, to.value, {k: v for k, v in detail.items() if v}
    )


async def steps(session: AsyncSession, transaction_id: Any) -> list[SagaStep]:
    """A transaction's saga steps, oldest first."""
    return await repository.steps(session, transaction_id)
