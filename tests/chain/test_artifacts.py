"""The committed contract artifacts are exactly what the committed sources compile to."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from eth_utils.crypto import keccak

from diboas.chain.artifacts import ARTIFACTS_DIR, CHAIN_TOOLS_DIR, PROJECT_CONTRACTS, load


def test_committed_artifacts_match_a_fresh_compilation(chain_tools: None, tmp_path: Path) -> None:
    subprocess.run(
        ["node", str(CHAIN_TOOLS_DIR / "compile"), str(tmp_path)],  # noqa: S607 - node on PATH
        check=True,
        capture_output=True,
    )
    for name in PROJECT_CONTRACTS:
        fresh = json.loads((tmp_path / f"{name}.json").read_text())
        committed = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
        assert fresh == committed, f"{name}.json is stale: run tools/chain/compile and commit"


def test_uniswap_router_expects_the_published_pair_bytecode() -> None:
    # The router computes pair addresses from this init-code hash; any other pair build
    # would make every swap go to an empty address.
    pair = load("UniswapV2Pair").bytecode
    router = load("UniswapV2Router02").bytecode
    assert keccak(hexstr=pair).hex() in router
