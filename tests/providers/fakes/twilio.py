"""Twilio's Messages resource as documented: ``POST /2010-04-01/Accounts/{AccountSid}/
Messages.json``, form-encoded ``To``/``From``/``Body``, HTTP Basic ``AccountSid:AuthToken``,
errors as ``{"code", "message", "more_info", "status"}``, and the magic numbers of Twilio's
test credentials (``From`` must be +15005550006; ``To`` +15005550001 → 21211 and so on)."""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.providers.fakes.server import Fault, Faults, apply_fault

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "twilio-test-auth-token-0123456789"
FROM_NUMBER = "+15005550006"
_TO_ERRORS = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (
        21612,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {frm} via SMS.",
    ),
    "+15005550003": (
        21408,
        "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}.",
    ),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
_FAULT_CODES = {429: 20429, 500: 20500, 503: 20503}


@dataclass
class TwilioState:
    """Messages accepted, the requests seen, and the fault queue."""

    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def _fault(status: int, _fault: Fault) -> JSONResponse:
    return _error(status, _FAULT_CODES.get(status, 20500), "injected by the test")


def _credentials(request: Request) -> tuple[str, str] | None:
    value = request.headers.get("authorization", "")
    if not value.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def _refusal(to: str | None, frm: str | None, body: str | None) -> JSONResponse | None:
    """Twilio's validation of a new message, in its order: presence, sender, recipient."""
    for value, code, message in (
        (to, 21604, "A 'To' phone number is required."),
        (frm, 21603, "A 'From' phone number is required."),
        (body, 21602, "Message body is required."),
    ):
        if not value:
            return _error(400, code, message)
    if frm != FROM_NUMBER:
        return _error(
            400,
            21606,
            f"The From phone number {frm} is not a valid, SMS-capable inbound phone number or short code for your account.",
        )
    if to in _TO_ERRORS:
        code, message = _TO_ERRORS[to]
        return _error(400, code, message.format(to=to, frm=frm))
    if not re.fullmatch(r"\+[1-9]\d{1,14}", to):
        return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    return None


def create_app(state: TwilioState) -> Starlette:
    async def create_message(request: Request) -> Response:
        state.requests.append(
            {"method": request.method, "path": request.url.path, "headers": dict(request.headers)}
        )
        injected = await apply_fault(state.faults, _fault)
        if injected is not None:
            return injected
        account = request.path_params["account_sid"]
        if _credentials(request) != (account, AUTH_TOKEN) or account != ACCOUNT_SID:
            return _error(401, 20003, "Authenticate")
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return _error(400, 21601, "Phone number is required")  # Twilio reads only the form
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        state.requests[-1]["form"] = form
        to, frm, body = form.get("To"), form.get("From"), form.get("Body")
        refused = _refusal(to, frm, body)
        if refused is not None:
            return refused
        sid = "SM" + uuid.uuid4().hex
        now = format_datetime(datetime.now(UTC), usegmt=True)
        message = {
            "sid": sid,
            "account_sid": account,
            "to": to,
            "from": frm,
            "body": body,
            "status": "queued",
            "direction": "outbound-api",
            "num_segments": "1",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "error_code": None,
            "error_message": None,
            "price": None,
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
        }
        state.messages[sid] = message
        return JSONResponse(message, status_code=201)

    return Starlette(
        routes=[
            Route(
                "/2010-04-01/Accounts/{account_sid}/Messages.json",
                create_message,
                methods=["POST"],
            )
        ]
    )
