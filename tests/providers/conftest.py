"""Real local counterparts of payment providers: localstripe, through ``tools/localstripe``.

localstripe runs from its own virtualenv (``.data/localstripe-venv``, built on first use from
``requirements/localstripe.txt``), bound to 127.0.0.1 on a free port, state in memory. Failing
to start it fails the tests that need it — in CI and everywhere else: these tests are never
skipped.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = PROJECT_ROOT / "tools" / "localstripe"
READY = "localstripe listening on "
# The first start builds the virtualenv (pip install); later starts take about a second.
START_DEADLINE = float(os.environ.get("DIBOAS_TEST_LOCALSTRIPE_START_TIMEOUT", "600"))
LOCALSTRIPE_API_KEY = "sk_test_diboas"


def _fail(message: str, log: Path) -> None:
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    where = " (CI)" if os.environ.get("CI") == "true" else ""
    pytest.fail(f"localstripe did not start{where}: {message}\n--- its stderr ---\n{tail}")


def _ready_line(process: subprocess.Popen[bytes], log: Path, deadline: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if not selector.select(timeout=min(remaining, 1.0)):
                if process.poll() is not None:
                    _fail(f"the launcher exited with {process.returncode}", log)
                continue
            line = process.stdout.readline().decode(errors="replace").strip()
            if line.startswith(READY):
                return line.removeprefix(READY)
            if not line and process.poll() is not None:
                _fail(f"the launcher exited with {process.returncode}", log)
    _fail(f"no ready line within {START_DEADLINE:.0f}s", log)
    raise AssertionError("unreachable")  # pytest.fail raises


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    headers = {"Authorization": f"Bearer {LOCALSTRIPE_API_KEY}"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _fail(f"it exited with {process.returncode}", log)
        try:
            if httpx.get(f"{url}/v1/balance", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    _fail(f"{url} did not answer GET /v1/balance", log)


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a localstripe serving this test run."""
    log = tmp_path_factory.mktemp("localstripe") / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(LAUNCHER), "--port", "0"],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        url = _ready_line(process, log, time.monotonic() + START_DEADLINE)
        _wait_until_answering(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
