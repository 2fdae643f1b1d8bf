"""Contract artifacts (ABI + creation bytecode).

The project's own contracts are compiled by ``tools/chain/compile`` into ``artifacts/`` and
committed, so nothing here needs Node.js. Uniswap v2 comes as published: the build JSON of
the npm packages ``@uniswap/v2-core`` and ``@uniswap/v2-periphery`` installed by
``tools/chain/install`` (their router hard-codes the pair's init-code hash, so the pair must
be the exact published bytecode, not a recompilation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
PROJECT_ROOT = Path(__file__).resolve().parents[3]
CHAIN_TOOLS_DIR = PROJECT_ROOT / "tools" / "chain"
NODE_MODULES = CHAIN_TOOLS_DIR / "node_modules"

PROJECT_CONTRACTS = ("TestUSDC", "DiboasVault")
UNISWAP_CONTRACTS = {
    "UniswapV2Factory": "@uniswap/v2-core/build/UniswapV2Factory.json",
    "UniswapV2Pair": "@uniswap/v2-core/build/UniswapV2Pair.json",
    "UniswapV2Router02": "@uniswap/v2-periphery/build/UniswapV2Router02.json",
    "WETH9": "@uniswap/v2-periphery/build/WETH9.json",
}


class ArtifactMissingError(RuntimeError):
    """An artifact is not where it should be (the chain tools are not installed)."""


@dataclass(frozen=True, slots=True)
class Artifact:
    """One contract: its ABI and creation bytecode (0x-prefixed)."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def _read(path: Path, name: str) -> Artifact:
    if not path.is_file():
        raise ArtifactMissingError(
            f"{path} is missing: run tools/chain/install (make test does) to get {name}"
        )
    data = json.loads(path.read_text())
    bytecode = data["bytecode"]
    if isinstance(bytecode, dict):  # solc standard-JSON shape
        bytecode = bytecode["object"]
    if not bytecode.startswith("0x"):
        bytecode = "0x" + bytecode
    return Artifact(name=name, abi=data["abi"], bytecode=bytecode)


@cache
def load(name: str) -> Artifact:
    """A contract by name: the project's own (committed) or a Uniswap v2 one (node_modules)."""
    if name in PROJECT_CONTRACTS:
        return _read(ARTIFACTS_DIR / f"{name}.json", name)
    if name in UNISWAP_CONTRACTS:
        return _read(NODE_MODULES / UNISWAP_CONTRACTS[name], name)
    raise KeyError(f"no artifact named {name}")


def project_abis() -> list[list[dict[str, Any]]]:
    """The ABIs of the project's contracts (their custom errors decode reverts)."""
    return [load(name).abi for name in PROJECT_CONTRACTS]
