"""SMS: an interface, a Twilio adapter (Programmable Messaging REST API) and a sandbox that
writes each message to ``data_dir/sms-outbox``.

Twilio: ``POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded ``To``,
``From``, ``Body``, HTTP Basic auth ``AccountSid:AuthToken``; 201 with the message resource
(``sid`` ``SM…``); errors as ``{"code", "message", "more_info", "status"}``. Refusals of the
request itself (400 with 21211 invalid 'To', 21610 unsubscribed, 21614 not SMS-capable …, 401
bad credentials, 403, 404) are not retryable; 429 (20429) and 5xx are; no answer in time is
``ProviderTimeoutError``. Twilio's error ``code`` becomes ``ProviderError.code``.

The sandbox refuses the numbers Twilio's test credentials document, with Twilio's codes:

================  =======  ==============================================
``To``            code     meaning
================  =======  ==============================================
+15005550001      21211    invalid number
+15005550002      21612    Twilio cannot route to this number
+15005550003      21408    no international permission for this number
+15005550004      21610    number blocked (unsubscribed)
+15005550009      21614    number cannot receive SMS
not E.164         21211    invalid number
================  =======  ==============================================
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import httpx
from pydantic import SecretStr

from diboas.kit.ids import uuid7
from diboas.providers.resilience import ProviderError, ProviderTimeoutError
from diboas.settings import Settings

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
SANDBOX_REFUSALS: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "Twilio cannot route to the 'To' number {to}."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for {to}."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient {to}."),
    "+15005550009": (21614, "'To' number {to} is not a valid mobile number."),
}


class SmsSender(Protocol):
    """Sends one text message; returns the provider's message id or raises ProviderError."""

    async def send(self, to: str, body: str) -> str: ...


@dataclass(frozen=True, slots=True)
class TwilioConfig:
    """Twilio credentials, sender number and API host."""

    account_sid: str
    auth_token: SecretStr
    from_number: str
    base_url: str = "https://api.twilio.com"
    timeout: float = 10.0


def _twilio_error(response: httpx.Response) -> ProviderError:
    status = response.status_code
    try:
        body = response.json()
        code, message = str(body.get("code") or status), str(body.get("message") or "")
    except (ValueError, AttributeError):
        code, message = str(status), response.reason_phrase
    retryable = status == 429 or status >= 500
    return ProviderError(
        f"Twilio {'failed' if retryable else 'refused'} ({status}, {code}): {message}",
        provider="twilio",
        retryable=retryable,
        code=code,
    )


class TwilioSmsSender:
    """Sends through Twilio's Messages resource."""

    def __init__(self, config: TwilioConfig) -> None:
        self.config = config

    async def send(self, to: str, body: str) -> str:
        c = self.config
        url = f"{c.base_url}/2010-04-01/Accounts/{c.account_sid}/Messages.json"
        try:
            async with httpx.AsyncClient(timeout=c.timeout) as client:
                response = await client.post(
                    url,
                    data={"To": to, "From": c.from_number, "Body": body},
                    auth=(c.account_sid, c.auth_token.get_secret_value()),
                    headers={"Accept": "application/json"},
                )
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(
                f"Twilio did not answer within {c.timeout}s", provider="twilio"
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderError(
                f"Twilio unreachable: {exc}", provider="twilio", retryable=True, code="unavailable"
            ) from exc
        if response.status_code >= 400:
            raise _twilio_error(response)
        try:
            return str(response.json()["sid"])
        except (ValueError, KeyError, TypeError) as exc:
            # Twilio accepted the message (2xx) but the id is unreadable: retrying could send it
            # twice, so this is not retryable.
            raise ProviderError(
                "Twilio accepted the message but its answer had no sid",
                provider="twilio",
                code="bad_response",
            ) from exc


class SandboxSmsSender:
    """Writes each message to ``data_dir/sms-outbox/<sid>.json``; refuses Twilio's magic
    test numbers (see the module docstring) like Twilio's test credentials do."""

    def __init__(self, settings: Settings, *, from_number: str = "+15005550006") -> None:
        self.outbox = Path(settings.data_dir) / "sms-outbox"
        self.from_number = from_number

    async def send(self, to: str, body: str) -> str:
        refusal = SANDBOX_REFUSALS.get(to) or (
            None if E164.fullmatch(to) else SANDBOX_REFUSALS["+15005550001"]
        )
        if refusal is not None:
            code, message = refusal
            raise ProviderError(
                f"sandbox SMS refused ({code}): {message.format(to=to)}",
                provider="sandbox",
                code=str(code),
            )
        sid = f"SM{uuid7().hex}"
        record = {
            "sid": sid,
            "to": to,
            "from": self.from_number,
            "body": body,
            "date_created": datetime.now(UTC).isoformat(),
        }
        self.outbox.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(
            (self.outbox / f"{sid}.json").write_text, json.dumps(record, indent=2), "utf-8"
        )
        return sid


def sms_sender(settings: Settings) -> SmsSender:
    """The sender the settings choose (``DIBOAS_SMS_PROVIDER``: sandbox or twilio)."""
    if settings.sms_provider == "twilio":
        if settings.twilio_auth_token is None or not settings.twilio_account_sid:
            raise ValueError("DIBOAS_TWILIO_ACCOUNT_SID and DIBOAS_TWILIO_AUTH_TOKEN are required")
        return TwilioSmsSender(
            TwilioConfig(
                account_sid=settings.twilio_account_sid,
                auth_token=settings.twilio_auth_token,
                from_number=settings.twilio_from_number,
                base_url=settings.twilio_base_url,
                timeout=settings.twilio_timeout_seconds,
            )
        )
    return SandboxSmsSender(settings)
