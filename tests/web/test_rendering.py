"""Pages must not slow the platform: one Jinja2 environment, every template compiled once and
kept; no file system access per request."""

from __future__ import annotations

import httpx
import pytest
from jinja2 import FileSystemLoader

from tests.web.helpers import web_sign_up

PAGES = ("/", "/fees", "/learn", "/learn/how-fees-work", "/app", "/app/transactions")


async def test_no_template_is_read_from_disk_twice(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    original = FileSystemLoader.get_source

    def counting(self: FileSystemLoader, environment: object, template: str) -> object:
        reads.append(template)
        return original(self, environment, template)  # type: ignore[arg-type]

    monkeypatch.setattr(FileSystemLoader, "get_source", counting)
    await web_sign_up(client)
    for path in PAGES:
        assert (await client.get(path)).status_code == 200
    reads.clear()
    for path in PAGES:
        assert (await client.get(path)).status_code == 200
    assert reads == []
