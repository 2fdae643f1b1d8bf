"""`diboas run` as a user starts it: a real process, a real port, Ctrl-C to stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from sqlalchemy.engine import URL

from diboas.db.urls import plain_url
from diboas.demo import DEMO_EMAIL, DEMO_PASSWORD

START_TIMEOUT_SECONDS = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "diboas.cli", "run"],
        env={**os.environ, **env, "DIBOAS_PORT": str(port)},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError(f"/healthz never answered:\n{log.read_text()}")


def _interrupt(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=30)


def test_run_serves_the_platform_on_a_configured_database(
    database_url: URL, tmp_path: Path
) -> None:
    log = tmp_path / "run.log"
    process, port = _start({"DIBOAS_DATABASE_URL": plain_url(database_url)}, log)
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        assert (
            httpx.get(f"{base}/api/v1/openapi.json", timeout=5).json()["info"]["title"]
            == "diBoaS API"
        )
        assert (
            "diboas_http_request_duration_seconds" in httpx.get(f"{base}/metrics", timeout=5).text
        )
        # The printed demo credentials work, and the demo user may move money at once.
        login = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        me = httpx.get(f"{base}/api/v1/me", headers=headers, timeout=5).json()
        assert (me["kyc_tier"], me["email_verified"]) == (1, True)
    finally:
        code = _interrupt(process)
    output = log.read_text()
    assert code == 0, output
    assert "demo user: demo@example.com / " in output
    assert "USD balance 1000.00" in output


def _postgres_running_on(pgdata: Path) -> bool:
    for proc in psutil.process_iter(attrs=("name", "cmdline")):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("name") == "postgres" and str(pgdata) in " ".join(cmdline):
            return True
    return False


def test_run_on_the_embedded_database_stops_it_and_keeps_the_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"DIBOAS_DATABASE_URL": "", "DIBOAS_DATA_DIR": str(data)}
    pgdata = (data / "postgres").resolve()

    first_log = tmp_path / "first.log"
    process, _ = _start(env, first_log)
    assert _postgres_running_on(pgdata)
    assert _interrupt(process) == 0, first_log.read_text()
    assert not _postgres_running_on(pgdata), "Ctrl-C must stop the embedded PostgreSQL"

    second_log = tmp_path / "second.log"
    process, _ = _start(env, second_log)
    assert _interrupt(process) == 0, second_log.read_text()
    # The same demo user, deposited once: the data survived and the demo did not repeat.
    assert "USD balance 1000.00" in second_log.read_text()
    assert (pgdata / "PG_VERSION").exists()
