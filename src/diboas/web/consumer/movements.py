"""Money movements from a web form, through banking's own services.

The same steps as the API's movement endpoints: the movement runs in one transaction under
an idempotency key — here the key is a random value the form carried since it was rendered,
so a form sent twice (a double click, a reload after a lost answer) moves money once and
shows the first outcome again — and a refusal by the limits or by screening is audited in a
transaction of its own, because the movement's transaction rolled back with the refusal.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import service as banking
from diboas.banking.schemas import DepositIn, TransferIn, WithdrawalIn
from diboas.compliance import audit, limits, screening
from diboas.compliance.audit import AuditContext
from diboas.identity import repository as users
from diboas.kit.errors import (
    DomainError,
    IdempotencyKeyInFlightError,
    IdempotencyKeyReusedError,
)
from diboas.ledger.idempotency import IdempotencyPolicy, run_idempotent
from diboas.web.routing import Page

Kind = Literal["deposit", "withdrawal", "transfer"]
Body = DepositIn | WithdrawalIn | TransferIn
_STARTERS: dict[Kind, Callable[..., Awaitable[banking.Movement]]] = {
    "deposit": banking.create_deposit,
    "withdrawal": banking.create_withdrawal,
    "transfer": banking.create_transfer,
}


class StoredRefusalError(DomainError):
    """A refusal replayed from the idempotency store (the form was sent twice)."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        error = body.get("error") or {}
        super().__init__(str(error.get("message", "refused")), details=error.get("details"))
        self.status_code = status_code  # type: ignore[misc]
        self.code = str(error.get("code", "refused"))  # type: ignore[misc]


class FormAlreadySentError(DomainError):
    """The form's key was used already (its first answer stands)."""

    status_code = 409
    code = "form_already_sent"


Work = Callable[[AsyncSession], Awaitable[dict[str, Any]]]


async def once(page: Page, scope: str, request: dict[str, Any], work: Work) -> tuple[Any, bool]:
    """Run a form's work once for the key it carried since it was rendered (a resent form —
    a double click, a reload — gets the first answer again); (stored body, replayed). A
    refusal stored by the first send is raised again."""

    async def accept(session: AsyncSession) -> tuple[int, Any]:
        return 201, await work(session)

    try:
        stored = await run_idempotent(
            page.db.sessions,
            scope=scope,
            key=page.field("form_key") or new_form_key(),
            request={"web": request},
            work=accept,
            policy=IdempotencyPolicy.from_settings(page.settings),
        )
    except IdempotencyKeyReusedError:
        raise FormAlreadySentError("this form was already sent; open it again") from None
    except IdempotencyKeyInFlightError:
        raise FormAlreadySentError("this form is being sent; wait a moment") from None
    if stored.status_code >= 400:  # a refusal stored by the first send
        raise StoredRefusalError(stored.status_code, stored.body)
    return stored.body, stored.replayed


def new_form_key() -> str:
    """An idempotency key for a form about to be rendered."""
    return f"web-{uuid.uuid4()}"


async def run(page: Page, kind: Kind, body: Body, form_key: str) -> uuid.UUID:
    """Start the movement once for ``form_key``; its transaction id, or the refusal raised."""
    user = page.me()
    # The form always carries its key; a request without one gets a key of its own (no
    # replay protection, like an API call without an Idempotency-Key).
    form_key = form_key or new_form_key()
    context = audit.request_context(page.request, user)
    starter = _STARTERS[kind]

    accepted: list[banking.Movement] = []

    async def work(session: AsyncSession) -> tuple[int, Any]:
        movement = await starter(
            session, page.settings, user_id=user.id, request=body, context=context
        )
        accepted[:] = [movement]
        return 201, banking.transaction_out(movement.primary).model_dump(mode="json")

    try:
        stored = await run_idempotent(
            page.db.sessions,
            scope=f"user:{user.id}",
            key=form_key,
            request={"web": kind, "body": body.model_dump(mode="json")},
            work=work,
            policy=IdempotencyPolicy.from_settings(page.settings),
        )
    except IdempotencyKeyReusedError:
        # The form was sent before with other values (back, re-reviewed, confirmed again).
        raise FormAlreadySentError(
            "this form was already sent; open the form again to make another"
        ) from None
    except IdempotencyKeyInFlightError:
        raise FormAlreadySentError("this form is being sent; wait a moment") from None
    except DomainError as refusal:
        await _audit_refusal(page, context, kind, body, refusal)
        raise
    if accepted and not stored.replayed:
        banking.count_status(*accepted[0].transactions)
    if stored.status_code >= 400:  # a refusal stored by the first send
        raise StoredRefusalError(stored.status_code, stored.body)
    return uuid.UUID(str(stored.body["id"]))


async def _audit_refusal(
    page: Page, context: AuditContext, kind: Kind, body: Body, refusal: DomainError
) -> None:
    user = page.me()
    if isinstance(refusal, limits.REFUSALS):
        try:
            amount = Decimal(body.amount)
        except InvalidOperation:
            return  # the amount never parsed, so no limit was checked
        await limits.record_refusal(
            page.db.sessions, context, user=user, movement=kind, amount_usd=amount, error=refusal
        )
    elif isinstance(refusal, screening.RecipientScreeningError) and isinstance(body, TransferIn):
        email = str(body.recipient_email)
        recipient = await page.db.run(lambda s: users.find_by_email(s, email))
        if recipient is not None:
            await screening.record_refusal(page.db.sessions, context, recipient=recipient)
