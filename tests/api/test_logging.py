"""Structured logs: one JSON object per line, with the request id and the user id, and never a
password or a token."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from diboas.observability.logging import configure_logging
from tests.api.conftest import STRONG_PASSWORD, sign_up


@pytest.fixture
def json_logs() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO")
    try:
        yield
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


async def test_request_logs_are_json_with_ids_and_no_secrets(
    client: httpx.AsyncClient, json_logs: None, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    account = await sign_up(client)
    me = await client.get("/api/v1/me", headers=account["headers"])
    assert me.status_code == 200

    output = capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    requests = [entry for entry in lines if entry.get("event") == "request"]
    assert {r["route"] for r in requests} >= {
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/me",
    }
    assert all(r.get("request_id") for r in requests)
    me_line = next(r for r in requests if r["route"] == "/api/v1/me")
    assert me_line["request_id"] == me.headers["x-request-id"]
    assert me_line["user_id"] == account["user"]["id"]
    for secret in (
        STRONG_PASSWORD,
        account["tokens"]["access_token"],
        account["tokens"]["refresh_token"],
    ):
        assert secret not in output
