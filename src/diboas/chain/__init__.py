"""On-chain custody and DeFi plumbing: contracts and their artifacts, custodial wallets with
encrypted keys, the deposit watcher, and the local anvil node used by tests and development."""
