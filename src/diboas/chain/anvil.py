"""A local anvil node (from the npm package ``@foundry-rs/anvil``, installed under
``tools/chain/node_modules`` by ``tools/chain/install``), for tests and development.

The binary ships in the package's platform-specific optional dependency
(``@foundry-rs/anvil-linux-amd64`` …); it is run directly rather than through the npm wrapper
script, so stopping it is one signal to one process.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import time
from pathlib import Path

import httpx

from diboas.chain.artifacts import NODE_MODULES

_PACKAGES = {
    ("Linux", "x86_64"): "anvil-linux-amd64",
    ("Linux", "aarch64"): "anvil-linux-arm64",
    ("Linux", "arm64"): "anvil-linux-arm64",
    ("Darwin", "x86_64"): "anvil-darwin-amd64",
    ("Darwin", "arm64"): "anvil-darwin-arm64",
}
# anvil's default mnemonic ("test test … junk"): well-known keys, funded on every anvil.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


class AnvilUnavailableError(RuntimeError):
    """anvil is not installed here or did not start."""


def anvil_binary(node_modules: Path = NODE_MODULES) -> Path:
    """The anvil executable inside its platform package."""
    package = _PACKAGES.get((platform.system(), platform.machine()))
    if package is None:
        raise AnvilUnavailableError(
            f"no anvil package for {platform.system()} {platform.machine()}"
        )
    binary = node_modules / "@foundry-rs" / package / "bin" / "anvil"
    if not binary.is_file():
        raise AnvilUnavailableError(f"{binary} is missing: run tools/chain/install")
    return binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AnvilNode:
    """One anvil process bound to 127.0.0.1, mining a block per transaction (automine)."""

    def __init__(
        self,
        *,
        port: int | None = None,
        chain_id: int = 31337,
        accounts: int = 10,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.chain_id = chain_id
        self.accounts = accounts
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 30.0) -> str:
        log = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        options = {
            "--host": "127.0.0.1",
            "--port": str(self.port),
            "--chain-id": str(self.chain_id),
            "--accounts": str(self.accounts),
            "--mnemonic": DEV_MNEMONIC,
        }
        self.process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
            [str(anvil_binary()), *(part for pair in options.items() for part in pair)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AnvilUnavailableError(f"anvil exited with {self.process.returncode}")
            try:
                if httpx.post(self.url, json=payload, timeout=1).status_code == 200:
                    return self.url
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        raise AnvilUnavailableError(f"anvil did not answer on {self.url} within {timeout}s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
