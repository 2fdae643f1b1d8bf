"""Stripe webhook events as Stripe sends them: the event JSON and its ``Stripe-Signature``
header (``t=<unix time>,v1=<HMAC-SHA256 of "t.payload" with the endpoint's secret>``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from tests.orchestration.conftest import WEBHOOK_SECRET


def signed_event(kind: str, subject: dict[str, Any]) -> tuple[bytes, str]:
    """A new event of ``kind`` about ``subject``, and its signature header."""
    payload = json.dumps(
        {
            "id": f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "type": kind,
            "api_version": "2026-10-28",
            "created": int(time.time()),
            "data": {"object": subject},
        }
    ).encode()
    timestamp = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return payload, f"t={timestamp},v1={mac.hexdigest()}"
