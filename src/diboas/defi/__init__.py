"""DeFi strategies: a catalog of vault strategies, risk profiles, and positions held as vault
shares inside the platform's omnibus wallet (see ARCHITECTURE: DeFi strategies and positions)."""
