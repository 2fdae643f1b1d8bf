"""Web tests go through the same app fixtures as the API tests (the ASGI app with its
in-process worker on the test database, the SMTP sink its emails go to)."""

from tests.api.conftest import client, inbox, mailbox

__all__ = ["client", "inbox", "mailbox"]
