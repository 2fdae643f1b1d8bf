"""The sandbox email sender: real .eml files, and a bounce address refused permanently."""

from __future__ import annotations

import email
from pathlib import Path

import pytest

from diboas.providers.email import Email, EmailDeliveryError, SandboxEmailSender
from diboas.settings import Settings


async def test_sandbox_writes_an_eml_file(tmp_path: Path) -> None:
    sender = SandboxEmailSender(Settings(data_dir=tmp_path))
    message_id = await sender.send(Email(to="ada@example.com", subject="Hello", body="Hi Ada"))
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1
    parsed = email.message_from_bytes(files[0].read_bytes())
    assert (parsed["To"], parsed["Subject"], parsed["Message-ID"]) == (
        "ada@example.com",
        "Hello",
        message_id,
    )


async def test_sandbox_bounce_address_is_a_permanent_failure(tmp_path: Path) -> None:
    sender = SandboxEmailSender(Settings(data_dir=tmp_path))
    with pytest.raises(EmailDeliveryError) as refused:
        await sender.send(Email(to="nobody@bounce.example.com", subject="x", body="y"))
    assert refused.value.permanent
    assert not (tmp_path / "outbox").exists()
