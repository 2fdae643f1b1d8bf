"""Emails sent as durable jobs: staged in the transaction that decides to send them."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.orchestration.jobs import JobContext, job, stage
from diboas.providers.email import Email, EmailDeliveryError, email_sender

log = structlog.get_logger(__name__)

_SUBJECTS = {
    "email_verification": "Confirm your email address",
    "password_reset": "Reset your diBoaS password",
}
_PATHS = {"email_verification": "/app/verify-email", "password_reset": "/app/reset-password"}


async def stage_token_email(
    session: AsyncSession, *, user_email: str, full_name: str, purpose: str, token: str
) -> None:
    """Queue the email carrying a single-use token."""
    await stage(
        session,
        "notifications.send_email",
        {"to": user_email, "name": full_name, "purpose": purpose, "token": token},
    )


def render(payload: dict[str, Any], public_url: str) -> Email:
    """The message for a token email."""
    purpose = payload["purpose"]
    link = f"{public_url}{_PATHS[purpose]}?token={payload['token']}"
    action = (
        "confirm your email address" if purpose == "email_verification" else "choose a new password"
    )
    body = (
        f"Hello {payload['name']},\n\n"
        f"Use this link to {action}. It works once and expires within the hour:\n\n{link}\n\n"
        f"Your code, if you prefer to paste it: {payload['token']}\n\n"
        "If you did not ask for this, ignore this message.\n\n— diBoaS\n"
    )
    return Email(to=payload["to"], subject=_SUBJECTS[purpose], body=body)


@job("notifications.send_email", max_attempts=6)
async def send_email(context: JobContext, payload: dict[str, Any]) -> None:
    """Send one email; a permanent refusal is not retried."""
    sender = context.services.get("email") or email_sender(context.settings)
    try:
        await sender.send(render(payload, context.settings.public_url))
    except EmailDeliveryError as exc:
        if exc.permanent:
            # Nothing a retry could change: record it and finish the job.
            log.warning("email refused permanently", purpose=payload["purpose"], reason=str(exc))
            return
        raise
