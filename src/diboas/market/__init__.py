"""Market data: prices (sandbox feed by default)."""
