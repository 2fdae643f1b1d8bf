"""HTTP tests go through the ASGI app, with its lifespan (and its in-process job worker), on
the test database; email goes to a real SMTP sink (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import atexit
import email
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from sqlalchemy.engine import URL

from diboas.api.app import create_app
from diboas.db.urls import plain_url
from diboas.settings import Settings

STRONG_PASSWORD = "correct-horse-battery-staple"


@dataclass
class Mailbox:
    """Every message the SMTP sink received."""

    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    async def wait_for(self, to: str, subject_contains: str, seconds: float = 20.0) -> Message:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in reversed(self.messages):
                if message["To"] == to and subject_contains in message["Subject"]:
                    return message
            await asyncio.sleep(0.1)
        raise AssertionError(f"no email to {to} about {subject_contains!r}")

    async def token_for(self, to: str, subject_contains: str) -> str:
        message = await self.wait_for(to, subject_contains)
        body = message.get_payload(decode=True)
        assert isinstance(body, bytes)
        found = re.search(r"code, if you prefer to paste it: (\S+)", body.decode())
        assert found is not None
        return found.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


# Files the platform keeps (the sandbox vault's and payments' state, outboxes) go to a directory
# of this run, not the checkout's .data: a run never inherits a vault grown by earlier runs.
RUN_DATA_DIR = Path(tempfile.mkdtemp(prefix="diboas-test-data-"))
atexit.register(shutil.rmtree, RUN_DATA_DIR, ignore_errors=True)


def settings_for_tests(smtp_port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": str(RUN_DATA_DIR),
        "email_provider": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_starttls": False,
        "login_max_failures": 3,
        "rate_limits_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def client(
    database_url: URL, mailbox: tuple[Mailbox, int]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for_tests(mailbox[1]), database_url=plain_url(database_url))
    async for c in _client(app):
        yield c


@pytest.fixture
def inbox(mailbox: tuple[Mailbox, int]) -> Mailbox:
    return mailbox[0]


@pytest.fixture
async def client_without_database() -> AsyncIterator[httpx.AsyncClient]:
    # Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    app = create_app(
        Settings(env="test", run_worker_in_process=False),
        database_url="postgresql://postgres@127.0.0.1:9/none",
    )
    async for c in _client(app):
        yield c


def new_email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


async def sign_up(
    client: httpx.AsyncClient, *, email_address: str | None = None, name: str = "Ada Lovelace"
) -> dict[str, Any]:
    """Register and sign in; returns the user, its tokens and an Authorization header."""
    address = email_address or new_email()
    registered = await client.post(
        "/api/v1/auth/register",
        json={"email": address, "password": STRONG_PASSWORD, "full_name": name},
    )
    assert registered.status_code == 201, registered.text
    tokens = await sign_in(client, address)
    return {"user": registered.json(), "email": address, **tokens}


async def sign_in(
    client: httpx.AsyncClient, address: str, password: str = STRONG_PASSWORD
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/auth/login", json={"email": address, "password": password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return {"tokens": body, "headers": {"Authorization": f"Bearer {body['access_token']}"}}
