"""The investing service: quotes (price-locked, held), execution on the cheapest healthy
venue, settlement in the ledger with FIFO lots, and the portfolio."""

from __future__ import annotations

from diboas.providers.exchange_routing import venues_for

__all__ = ["venues_for"]
