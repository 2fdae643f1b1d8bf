"""Reversals: money that came in and is taken back — a card refund, a chargeback (dispute),
a returned bank debit (ACH return) — and a chargeback won back (reinstatement).

A reversal is the mirror image of the deposit's own ledger entry, posted as a new entry
(the journal is append-only), plus a ``reversal`` transaction in the customer's history;
the deposit's status becomes ``reversed`` and its saga moves to ``reversed``.

If the customer has already spent part of the money, the reversal never clips: what is
available is taken, and the rest is posted to the customer's ``owed`` account, whose
negative balance is the debt. While anything is owed the account is frozen (no money
leaves: ``AccountFrozenError``), and incoming deposits pay the debt off first.

Each reversal is processed once: its ledger entry carries the provider's reference for it
(``reversal:<reference>``), checked under the deposit's row lock.

A dispute the platform wins gives the chargeback back (``reinstate``): the chargeback's entry
turned around once more (``reinstatement:<dispute>``), the customer's share paying off what
they owe first, and a ``reinstatement`` row in their history. The deposit keeps its
``reversed`` status: it was reversed, and the reinstatement is a movement of its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository
from diboas.banking.errors import AccountFrozenError, NotReversibleError
from diboas.banking.repository import NewTransaction, Transaction
from diboas.banking.service.common import banking_account
from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.kit.ids import uuid7
from diboas.kit.money import format_amount
from diboas.ledger import service as ledger
from diboas.ledger.models import Account, AccountKind, Domain, OwnerType
from diboas.orchestration import saga
from diboas.orchestration.saga import SagaState

SYSTEM = AuditContext(actor_role="system")


@dataclass(frozen=True, slots=True)
class Reversal:
    """What a provider reports taken back from a deposit."""

    deposit_id: uuid.UUID
    amount: Decimal  # of the deposit's amount; the whole of it for a chargeback or a return
    reference: str  # the provider's id for the refund, dispute or return
    reason_code: str  # refund, chargeback, R10…
    reason: str


async def owed_account(session: AsyncSession, user_id: uuid.UUID, currency: str) -> Account:
    """The customer's debt account in a currency (zero or negative)."""
    return await ledger.customer_account(
        session,
        owner_type=OwnerType.USER,
        owner_id=user_id,
        domain=Domain.BANKING,
        asset=currency,
        kind=AccountKind.OWED,
    )


async def ensure_not_frozen(session: AsyncSession, user_id: uuid.UUID, currency: str) -> None:
    """Refuse a movement out of an account that owes the platform (one index probe; no
    account is opened for a customer who never owed anything)."""
    owed = await repository.owed(session, user_id, currency)
    if owed < 0:
        raise AccountFrozenError(
            "your account owes a reversed payment; add money to settle it before moving money out",
            details={"owed": format_amount(-owed, 2), "currency": currency},
        )


async def repayment_postings(
    session: AsyncSession, user_id: uuid.UUID, currency: str, incoming: Decimal
) -> list[tuple[Account, Decimal]]:
    """Postings that pay a debt off from ``incoming`` money (to add to the deposit's entry)."""
    owed = await owed_account(session, user_id, currency)
    debt = -await ledger.locked_balance(session, owed.id)
    paid = min(debt, incoming)
    if paid <= 0:
        return []
    available = await banking_account(session, user_id, currency)
    return [(available, -paid), (owed, paid)]


async def reverse_deposit(session: AsyncSession, reversal: Reversal) -> Transaction | None:
    """Take back a completed deposit (or part of it); None if this reversal was processed."""
    deposit = await repository.get_transaction(session, reversal.deposit_id, lock=True)
    if deposit is None or deposit.type != "deposit":
        raise NotReversibleError("no such deposit", details={"id": str(reversal.deposit_id)})
    entry_reference = f"reversal:{reversal.reference}"
    if await repository.entry_exists(session, entry_reference):
        return None
    already = await repository.reversed_total(session, deposit)
    if deposit.status != "completed" or not 0 < reversal.amount <= deposit.amount - already:
        raise NotReversibleError(
            "only a completed deposit can be reversed, by at most what is left of it",
            details={"status": deposit.status, "left": str(deposit.amount - already)},
        )
    postings = await _mirror(session, deposit, reversal.amount)
    await ledger.post_entry(
        session,
        kind="banking.reversal",
        postings=postings,
        reference=entry_reference,
        metadata={"transaction_id": str(deposit.id), "reason": reversal.reason_code},
    )
    reversal_id = uuid7()
    await repository.insert_transactions(
        session,
        [
            NewTransaction(
                id=reversal_id,
                user_id=deposit.user_id,
                type="reversal",
                status="completed",
                asset=deposit.asset,
                amount=reversal.amount,
                method=deposit.method,
                provider=deposit.provider,
                related_transaction_id=deposit.id,
                description=reversal.reason[:500],
                metadata={"reason_code": reversal.reason_code, "reference": reversal.reference},
            )
        ],
    )
    if already + reversal.amount == deposit.amount:  # wholly reversed (a part stays completed)
        await saga.advance(
            session,
            deposit.id,
            deposit.created_at,
            deposit.saga_state or SagaState.SETTLED.value,
            SagaState.REVERSED,
            reason=reversal.reason_code,
            reference=reversal.reference,
            reversal_id=str(reversal_id),
        )
        await repository.set_status(
            session,
            deposit,
            "reversed",
            failure_code=reversal.reason_code,
            failure_reason=reversal.reason[:500],
        )
    await audit.record(
        session,
        SYSTEM,
        "banking.deposit.reversed",
        subject_type="transaction",
        subject_id=deposit.id,
        details={
            "user_id": str(deposit.user_id),
            "amount": str(reversal.amount),
            "reason": reversal.reason_code,
            "reference": reversal.reference,
        },
    )
    return await repository.get_transaction(session, reversal_id)


async def _mirror(
    session: AsyncSession, deposit: Transaction, amount: Decimal
) -> list[tuple[Account, Decimal]]:
    """The deposit's entry turned around (scaled to ``amount``), with the customer's leg
    taken from what is available and the rest owed."""
    original = await ledger.entry_postings(session, f"txn:{deposit.id}")
    if not original:
        raise NotReversibleError("the deposit never reached the ledger")
    available = await banking_account(session, deposit.user_id, deposit.asset)
    share = amount / deposit.amount
    postings: list[tuple[Account, Decimal]] = []
    for account_id, posted in original:
        back = -(posted * share).quantize(Decimal(1).scaleb(-available.scale))
        if account_id != available.id and back != 0:
            postings.append((await ledger.get_account(session, account_id), back))
    # The customer's leg is whatever balances the others (for a part reversal it absorbs the
    # rounding of the platform's legs, so the entry always sums to zero).
    taken = sum((amount for _, amount in postings), Decimal(0))  # off the customer
    have = await ledger.locked_balance(session, available.id)
    from_available = min(max(have, Decimal(0)), taken)
    if from_available > 0:
        postings.append((available, -from_available))
    if taken - from_available > 0:
        owed = await owed_account(session, deposit.user_id, deposit.asset)
        postings.append((owed, -(taken - from_available)))
    return postings


async def reinstate(
    session: AsyncSession, deposit_id: uuid.UUID, reference: str, reason: str
) -> Transaction | None:
    """Give back what the reversal ``reference`` (a dispute since won) took from a deposit;
    None if it was given back already, or if that reversal never took anything."""
    deposit = await repository.get_transaction(session, deposit_id, lock=True)
    if deposit is None or deposit.type != "deposit":
        raise NotReversibleError("no such deposit", details={"id": str(deposit_id)})
    entry_reference = f"reinstatement:{reference}"
    taken = await ledger.entry_postings(session, f"reversal:{reference}")
    if not taken or await repository.entry_exists(session, entry_reference):
        return None
    available = await banking_account(session, deposit.user_id, deposit.asset)
    owed = await owed_account(session, deposit.user_id, deposit.asset)
    customer = {available.id, owed.id}
    # The platform's legs turned around exactly; the customer gets back, in one sum, what the
    # reversal took from their available money and put on their debt.
    postings = [
        (await ledger.get_account(session, account_id), -posted)
        for account_id, posted in taken
        if account_id not in customer
    ]
    returned = -sum((posted for account_id, posted in taken if account_id in customer), Decimal(0))
    postings.append((available, returned))
    postings.extend(await repayment_postings(session, deposit.user_id, deposit.asset, returned))
    await ledger.post_entry(
        session,
        kind="banking.reinstatement",
        postings=postings,
        reference=entry_reference,
        metadata={"transaction_id": str(deposit.id), "reversal": reference},
    )
    reinstatement_id = uuid7()
    await repository.insert_transactions(
        session,
        [
            NewTransaction(
                id=reinstatement_id,
                user_id=deposit.user_id,
                type="reinstatement",
                status="completed",
                asset=deposit.asset,
                amount=returned,
                method=deposit.method,
                provider=deposit.provider,
                related_transaction_id=deposit.id,
                description=reason[:500],
                metadata={"reference": reference},
            )
        ],
    )
    await audit.record(
        session,
        SYSTEM,
        "banking.deposit.reinstated",
        subject_type="transaction",
        subject_id=deposit.id,
        details={"user_id": str(deposit.user_id), "amount": str(returned), "reference": reference},
    )
    return await repository.get_transaction(session, reinstatement_id)
