"""Bulk payouts: a CSV is validated into a batch (nothing moves), then a batch whose every
row is good is executed — every row paid from the treasury, in one transaction, once.

Validation reports per row: ``invalid_row`` (wrong field count), ``invalid_email``,
``unsupported_currency``, ``invalid_amount`` (the money rules: a plain decimal string,
positive, at most the currency's decimals), ``invalid_note``, ``duplicate_row`` (the same
recipient, amount, currency and note as an earlier line), ``unknown_recipient``,
``recipient_not_allowed`` (sanctions screening) and ``insufficient_treasury_balance`` (the
rows up to this one add up to more than the treasury holds). A batch with any invalid row is
``invalid`` and can never be executed: fix the file and upload it again (a new batch).

Execution is in ``payout_execution``.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking.service.common import SUPPORTED_CURRENCIES
from diboas.business import payouts_repository as repository
from diboas.business.access import Principal
from diboas.business.errors import PayoutBatchNotFoundError
from diboas.business.payouts_repository import PayoutBatch, PayoutRow, Recipient
from diboas.business.service.organisations import treasury_account
from diboas.business.service.payout_files import FIELD_LIMITS, RawRow, read
from diboas.compliance import audit, screening
from diboas.compliance.audit import AuditContext
from diboas.kit.errors import InvalidAmountError
from diboas.kit.money import format_amount, parse_amount
from diboas.ledger import service as ledger
from diboas.settings import Settings

CURRENCY = "USD"  # the treasury pays out in banking's currency
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Validated:
    """A batch as validated, with the treasury balance it was checked against."""

    batch: PayoutBatch
    rows: list[PayoutRow]
    treasury_available: Decimal
    # An earlier batch made from the very same file: uploaded twice by mistake?
    duplicate_of: uuid.UUID | None = None


def _invalid(raw: RawRow, code: str, message: str) -> PayoutRow:
    return PayoutRow(
        line=raw.line,
        recipient_email=raw.recipient_email,
        amount_text=raw.amount,
        currency=raw.currency,
        note=None if raw.note is None else raw.note[: FIELD_LIMITS["note"]],
        status="invalid",
        error_code=code,
        error_message=message,
    )


class _RowProblemError(Exception):
    """Why a row is invalid (caught in ``_judge``; never leaves this module)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _amount_of(raw: RawRow) -> Decimal:
    """The row's amount, once its own fields are well formed."""
    if raw.problem is not None:
        raise _RowProblemError("invalid_row", raw.problem)
    if not _EMAIL.fullmatch(raw.recipient_email):
        raise _RowProblemError("invalid_email", "recipient_email is not an email address")
    if raw.currency not in SUPPORTED_CURRENCIES:
        raise _RowProblemError("unsupported_currency", f"payouts are made in {CURRENCY}")
    if raw.note is not None and len(raw.note) > FIELD_LIMITS["note"]:
        raise _RowProblemError("invalid_note", "note is longer than 500 characters")
    if raw.note is not None and any(ord(c) < 32 or c == "\x7f" for c in raw.note):
        raise _RowProblemError("invalid_note", "note contains control characters")
    try:
        return parse_amount(raw.amount, SUPPORTED_CURRENCIES[raw.currency])
    except InvalidAmountError as error:
        raise _RowProblemError("invalid_amount", error.message) from None


async def _screened(session: AsyncSession, recipients: dict[str, Recipient]) -> set[str]:
    """The emails of recipients on a sanctions list."""
    return {
        email for email, r in recipients.items() if await screening.matches(session, r.full_name)
    }


@dataclass
class _Validation:
    """The state of one file's validation: who can be paid, and what the rows so far add up
    to."""

    active: dict[str, Recipient]
    listed: set[str]
    available: Decimal
    seen: dict[tuple[str, Decimal, str, str | None], int] = field(default_factory=dict)
    running: Decimal = _ZERO
    refused: list[Recipient] = field(default_factory=list)

    def check(self, raw: RawRow) -> tuple[Recipient, Decimal]:
        """The recipient and amount of a good row; _RowProblemError otherwise."""
        amount = _amount_of(raw)
        email = raw.recipient_email.lower()
        first = self.seen.setdefault((email, amount, raw.currency, raw.note), raw.line)
        if first != raw.line:
            raise _RowProblemError("duplicate_row", f"the same payout as line {first}")
        recipient = self.active.get(email)
        if recipient is None:
            raise _RowProblemError("unknown_recipient", "no diBoaS user has this email address")
        if email in self.listed:
            self.refused.append(recipient)
            raise _RowProblemError(
                "recipient_not_allowed", "this recipient cannot receive payments"
            )
        if self.running + amount > self.available:
            raise _RowProblemError(
                "insufficient_treasury_balance",
                "the rows up to this one add up to more than the treasury's "
                f"{format_amount(self.available, 2)} {CURRENCY}",
            )
        self.running += amount
        return recipient, amount


async def _judge(
    session: AsyncSession, raws: list[RawRow], available: Decimal
) -> tuple[list[PayoutRow], list[Recipient]]:
    emails = sorted({r.recipient_email.lower() for r in raws})
    found = await repository.recipients(session, emails)
    active = {e: r for e, r in found.items() if r.status == "active"}
    validation = _Validation(active, await _screened(session, active), available)
    rows: list[PayoutRow] = []
    for raw in raws:
        try:
            recipient, amount = validation.check(raw)
        except _RowProblemError as problem:
            rows.append(_invalid(raw, problem.code, problem.message))
            continue
        rows.append(
            PayoutRow(
                line=raw.line,
                recipient_email=raw.recipient_email,
                amount_text=raw.amount,
                currency=raw.currency,
                note=raw.note,
                status="ok",
                recipient_id=recipient.id,
                amount=amount,
            )
        )
    return rows, validation.refused


async def upload(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    *,
    content: bytes,
    filename: str | None,
    context: AuditContext,
) -> Validated:
    """Validate a payout file into a batch; nothing moves."""
    raws = read(content, settings)
    treasury = await treasury_account(session, principal.organisation_id, CURRENCY)
    available = (await ledger.balance(session, treasury.id)).balance
    rows, refused = await _judge(session, raws, available)
    digest = hashlib.sha256(content).digest()
    earlier = await repository.latest_batch_of_file(session, principal.organisation_id, digest)
    invalid = sum(1 for r in rows if r.status == "invalid")
    total = sum((r.amount for r in rows if r.amount is not None and r.status == "ok"), _ZERO)
    batch = await repository.insert_batch(
        session,
        batch_id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        status="invalid" if invalid else "validated",
        currency=CURRENCY,
        total=total,
        rows=rows,
        filename=None if filename is None else filename[:255],
        file_sha256=digest,
        created_by_user=None if principal.user is None else principal.user.id,
        created_by_key=None if principal.api_key is None else principal.api_key.id,
    )
    await audit.record(
        session,
        context,
        "business.payout_batch_uploaded",
        subject_type="organisation",
        subject_id=principal.organisation_id,
        details={
            "batch_id": str(batch.id),
            "status": batch.status,
            "rows": len(rows),
            "invalid": invalid,
            "total": str(total),
            "duplicate_of": None if earlier is None else str(earlier),
            **principal.actor_details(),
        },
    )
    for recipient in refused:
        # A screening hit is for compliance to review, even though nothing was sent.
        await audit.record(
            session,
            context,
            "screening.refused",
            outcome="refused",
            subject_type="user",
            subject_id=recipient.id,
            details={
                "movement": "business.payout",
                "lists": await screening.matches(session, recipient.full_name),
                "reference": str(batch.id),
            },
        )
    return Validated(batch, rows, available, earlier)


async def get(
    session: AsyncSession, organisation_id: uuid.UUID, batch_id: uuid.UUID
) -> tuple[PayoutBatch, list[PayoutRow]]:
    """A batch of the organisation with its rows (another organisation's is 404)."""
    batch = await repository.get_batch(session, organisation_id, batch_id)
    if batch is None:
        raise PayoutBatchNotFoundError("no such payout batch")
    return batch, await repository.rows(session, batch.id)


async def recent(session: AsyncSession, organisation_id: uuid.UUID) -> list[PayoutBatch]:
    """The organisation's latest batches (100), newest first."""
    return await repository.batches(session, organisation_id, limit=100)
