"""P2P transfers: money sent to another user, complete at once.

One transaction, like every movement (see ``movements``): the sender's row lock, the
screening, the limit check, the fee (a presented quote is used up), two transaction rows,
the audit row and one ledger entry commit together or not at all. The hot path is kept to
as few statements as it can be: the recipient is read and the sender locked in one, both
banking accounts are looked up in one, and the ledger entry, which locks the balance rows
until the commit, is written last.
"""

from __future__ import annotations

import dataclasses
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository
from diboas.banking.errors import RecipientNotFoundError, SelfTransferError
from diboas.banking.repository import NewTransaction
from diboas.banking.schemas import TransferIn
from diboas.banking.service import reversals
from diboas.banking.service.common import Movement, banking_account, fee_record, parse_usd
from diboas.compliance import audit, limits, screening
from diboas.compliance.audit import AuditContext
from diboas.fees import service as fees
from diboas.identity.repository import User
from diboas.kit.errors import NotFoundError
from diboas.kit.ids import uuid7
from diboas.ledger import service as ledger
from diboas.ledger.models import Account, AccountKind, Domain, OwnerType
from diboas.settings import Settings

_USER_FIELDS = tuple(field.name for field in dataclasses.fields(User))
_COLUMNS = ", ".join(_USER_FIELDS)

# The sender re-read under its row lock (limits are checked and used under it) and the
# recipient by email, unlocked: receiving uses no limit, so opposite transfers never wait on
# each other's user rows (the ledger locks the balance rows in account order).
_PARTIES = text(f"""
    WITH sender AS (SELECT {_COLUMNS} FROM users WHERE id = :sender_id FOR UPDATE),
         recipient AS (SELECT {_COLUMNS} FROM users WHERE email = :email)
    SELECT true AS is_sender, * FROM sender
    UNION ALL
    SELECT false AS is_sender, * FROM recipient
""")


async def _parties(
    session: AsyncSession, sender_id: uuid.UUID, email: str
) -> tuple[User | None, User | None]:
    rows = (
        await session.execute(_PARTIES, {"sender_id": sender_id, "email": email.strip().lower()})
    ).mappings()
    sender = recipient = None
    for row in rows:
        user = User(**{name: row[name] for name in _USER_FIELDS})
        if row["is_sender"]:
            sender = user
        else:
            recipient = user
    return sender, recipient


async def _banking_accounts(
    session: AsyncSession, sender: User, recipient: User, currency: str
) -> tuple[Account, Account]:
    found = await ledger.find_accounts(
        session,
        owner_type=OwnerType.USER,
        owner_ids=[sender.id, recipient.id],
        domain=Domain.BANKING,
        asset=currency,
        kind=AccountKind.AVAILABLE,
    )
    source = found.get(sender.id) or await banking_account(session, sender.id, currency)
    destination = found.get(recipient.id) or await banking_account(session, recipient.id, currency)
    return source, destination


async def create_transfer(
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: uuid.UUID,
    request: TransferIn,
    context: AuditContext,
) -> Movement:
    """Send money to another user at once: one ledger entry, two transaction rows."""
    currency, amount = parse_usd(request.currency, request.amount)
    sender, found = await _parties(session, user_id, str(request.recipient_email))
    if found is None or found.status != "active":
        raise RecipientNotFoundError("no diBoaS user has this email address")
    if found.id == user_id:
        raise SelfTransferError("you cannot send money to yourself")
    if sender is None or sender.status != "active":
        raise NotFoundError("no such user")
    recipient = found
    await screening.enforce_recipient(session, recipient)
    await reversals.ensure_not_frozen(session, sender.id, currency)
    await limits.enforce(session, settings, sender, "transfer", amount)
    out_id, in_id = uuid7(), uuid7()
    fee = await fees.fee_for(
        session,
        user=sender,
        operation="transfer",
        amount=amount,
        currency=currency,
        quote_id=request.quote_id,
        transaction_id=out_id,
    )
    source, destination = await _banking_accounts(session, sender, recipient, currency)
    await repository.insert_transactions(
        session,
        [
            NewTransaction(
                id=out_id,
                user_id=sender.id,
                type="transfer_out",
                status="completed",
                asset=currency,
                amount=amount,
                fee=fee.total,
                counterparty_user_id=recipient.id,
                related_transaction_id=in_id,
                quote_id=request.quote_id,
                description=request.note,
                metadata={"fee": fee_record(fee)},
            ),
            NewTransaction(
                id=in_id,
                user_id=recipient.id,
                type="transfer_in",
                status="completed",
                asset=currency,
                amount=amount,
                counterparty_user_id=sender.id,
                related_transaction_id=out_id,
                description=request.note,
            ),
        ],
    )
    await audit.record(
        session,
        context,
        "banking.transfer",
        subject_type="transaction",
        subject_id=out_id,
        details={
            "amount": str(amount),
            "currency": currency,
            "recipient_id": str(recipient.id),
            "transfer_in_id": str(in_id),
        },
    )
    movement = Movement(tuple(await repository.get_transactions(session, (out_id, in_id))))
    # The ledger entry comes last: it locks both balance rows, and they stay locked until
    # the commit, so nothing else should wait for a round trip in between (the rows above
    # depend on nothing the entry writes; a refusal here rolls them all back).
    postings = [(source, -amount), (destination, amount)]
    postings += await fees.fee_postings(session, source, fee)
    await ledger.post_entry(
        session,
        kind="banking.transfer",
        postings=postings,
        reference=f"txn:{out_id}",
        metadata={"transaction_ids": [str(out_id), str(in_id)]},
    )
    return movement
