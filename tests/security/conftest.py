"""Security tests go through the API fixtures (the app with its in-process worker, the SMTP
sink its sign-up emails go to)."""

from tests.api.conftest import client, mailbox

__all__ = ["client", "mailbox"]
