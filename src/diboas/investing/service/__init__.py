"""The investing service: quotes (price-locked, held), execution on the cheapest healthy
venue, settlement in the ledger with FIFO lots, and the portfolio."""

from __future__ import annotations

from typing import Any

from diboas.providers.exchange import Exchange
from diboas.providers.exchange_routing import VENUES_SERVICE, venue_slots
from diboas.providers.resilience import Failover
from diboas.settings import Settings


def venues_for(services: dict[str, Any], settings: Settings) -> Failover[Exchange]:
    """The app's venues: those it was handed (tests), else built once from settings."""
    existing = services.get(VENUES_SERVICE)
    if isinstance(existing, Failover):
        return existing
    built = venue_slots(settings)
    services[VENUES_SERVICE] = built
    return built
