"""Investing tests through the ASGI app share the API tests' SMTP sink fixture."""

from __future__ import annotations

from tests.api.conftest import mailbox

__all__ = ["mailbox"]
