"""Chain work the job worker repeats: scanning for deposits (when a chain is configured).

Every worker process runs it; the watcher is idempotent under concurrency (row locks on the
deposits), so several at once credit each deposit once.
"""

from __future__ import annotations

from diboas.chain.protocols import deposit_watcher
from diboas.orchestration.jobs import JobContext, periodic
from diboas.providers.chain_web3 import Web3Chain

_CHAIN = "chain.rpc"


@periodic("chain.scan_deposits", every=lambda settings: settings.chain_scan_interval_seconds)
async def scan_deposits(context: JobContext) -> None:
    """One deposit scan of the configured chain; nothing without ``DIBOAS_CHAIN_RPC_URL``."""
    chain = context.services.get(_CHAIN)
    if chain is None:
        chain = Web3Chain.from_settings(context.settings)
        if chain is None:
            return
        context.services[_CHAIN] = chain  # one client (and nonce cache) per worker
    watcher = deposit_watcher(context.settings, chain, chain_id=await chain.chain_id())
    await watcher.scan(context.sessions)
