from tests.chain.fixtures import anvil, chain, chain_tools, deployer, deployment  # noqa: F401
