"""Email: an interface, an SMTP implementation (SendGrid's SMTP relay in production, an
aiosmtpd sink in tests) and a sandbox that writes .eml files to the data folder."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import aiosmtplib

from diboas.kit.ids import uuid7
from diboas.settings import Settings


@dataclass(frozen=True, slots=True)
class Email:
    """One message to send."""

    to: str
    subject: str
    body: str


class EmailDeliveryError(Exception):
    """The provider did not accept the message (retryable unless ``permanent``)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class EmailSender(Protocol):
    """Sends one message or raises EmailDeliveryError."""

    async def send(self, email: Email) -> str: ...


def _message(sender: str, email: Email) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Message-ID"] = f"<{uuid7()}@diboas.com>"
    message.set_content(email.body)
    return message


class SmtpEmailSender:
    """SMTP with STARTTLS and login when configured."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, email: Email) -> str:
        s = self.settings
        message = _message(s.email_from, email)
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout_seconds,
                tls_context=ssl.create_default_context() if s.smtp_starttls else None,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise EmailDeliveryError(f"recipient refused: {exc}", permanent=True) from exc
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise EmailDeliveryError(f"SMTP delivery failed: {exc}") from exc
        return str(message["Message-ID"])


class SandboxEmailSender:
    """Writes each message to ``data_dir/outbox/<id>.eml`` (open it with any mail client).

    Like a vendor sandbox, an address at ``bounce.example.com`` is refused permanently.
    """

    def __init__(self, settings: Settings) -> None:
        self.outbox = Path(settings.data_dir) / "outbox"
        self.sender = settings.email_from

    async def send(self, email: Email) -> str:
        if email.to.lower().endswith("@bounce.example.com"):
            raise EmailDeliveryError("mailbox does not exist", permanent=True)
        message = _message(self.sender, email)
        self.outbox.mkdir(parents=True, exist_ok=True)
        path = self.outbox / f"{message['Message-ID'].strip('<>').split('@')[0]}.eml"
        await asyncio.to_thread(path.write_bytes, bytes(message))
        return str(message["Message-ID"])


def email_sender(settings: Settings) -> EmailSender:
    """The sender the settings choose."""
    if settings.email_provider == "smtp":
        return SmtpEmailSender(settings)
    return SandboxEmailSender(settings)
