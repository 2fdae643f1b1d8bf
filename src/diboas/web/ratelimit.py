"""Rate limits for the web's credential forms (sign-in and sign-up POSTs).

The API meters ``/api/v1/auth/*`` per client address (``api.ratelimit``); the same forms in
the browser must not be a way around that budget. They are counted in the same "auth"
bucket with the same limit (``DIBOAS_AUTH_RATE_LIMIT``) on the same kind of storage — shared
with the API's counts when Redis is configured, per process otherwise. If the storage cannot
be reached, sign-in fails closed (503), as in the API.
"""

from __future__ import annotations

import math
import time

import structlog
from limits import parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from diboas.api.ratelimit import storage_for
from diboas.observability.metrics import RATE_LIMITED
from diboas.settings import Settings

log = structlog.get_logger(__name__)

BUCKET = "auth"


class Refusal(Exception):  # noqa: N818 - a decision, carried to the page
    """Over the budget (429, with seconds to wait) or unmetered (503)."""

    def __init__(self, status_code: int, retry_after: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code
        self.retry_after = retry_after


class CredentialLimiter:
    """Counts credential form posts per client address."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limits_enabled
        self.item = parse(settings.auth_rate_limit)
        self.limiter = (
            SlidingWindowCounterRateLimiter(storage_for(settings)) if self.enabled else None
        )

    async def check(self, client: str) -> None:
        """Raise Refusal when ``client`` is over its budget (or it cannot be counted)."""
        if self.limiter is None:
            return
        try:
            allowed = await self.limiter.hit(self.item, BUCKET, client)
        except Exception as exc:  # noqa: BLE001 - any storage failure is handled the same way
            log.warning("rate limit storage unavailable", error=type(exc).__name__)
            raise Refusal(503, 1) from None
        if allowed:
            return
        RATE_LIMITED.labels(BUCKET).inc()
        try:
            stats = await self.limiter.get_window_stats(self.item, BUCKET, client)
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        except Exception:  # noqa: BLE001 - the refusal stands even if the reset time is unknown
            retry_after = self.item.get_expiry()
        raise Refusal(429, retry_after)
