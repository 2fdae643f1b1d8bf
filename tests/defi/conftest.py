"""DeFi tests run through the ASGI app: they share the API tests' SMTP sink fixture."""

from __future__ import annotations

from tests.api.conftest import mailbox

__all__ = ["mailbox"]
