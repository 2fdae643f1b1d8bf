"""Rate limits per client: the API budget on /api/v1 and a stricter one on /api/v1/auth.

Backed by Redis when ``DIBOAS_REDIS_URL`` is set (shared by every process), in process
otherwise, through the `limits` library (sliding-window counters). When Redis cannot be
reached, sign-in and money-moving requests fail closed (503) while reads stay up.
"""

from __future__ import annotations

import json
import math
import time

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from diboas.observability.metrics import RATE_LIMITED
from diboas.settings import Settings

log = structlog.get_logger(__name__)

API_PREFIX = "/api/v1"
AUTH_PREFIX = "/api/v1/auth/"
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def storage_for(settings: Settings) -> Storage:
    """Redis when configured, else memory (one process)."""
    if settings.redis_url:
        uri = (
            settings.redis_url
            if settings.redis_url.startswith("async+")
            else f"async+{settings.redis_url}"
        )
        return RedisStorage(
            uri,
            implementation="redispy",
            wrap_exceptions=True,
            socket_timeout=0.25,
            socket_connect_timeout=0.25,
        )
    return MemoryStorage()


def fails_closed(method: str, path: str) -> bool:
    """Sign-in and every state-changing request refuse to run unmetered."""
    return path.startswith(AUTH_PREFIX) or method not in _READS


class RateLimitMiddleware:
    """Counts each /api/v1 request against its client's budget; 429 with Retry-After past it."""

    def __init__(self, app: ASGIApp, settings: Settings, storage: Storage | None = None) -> None:
        self.app = app
        self.enabled = settings.rate_limits_enabled
        self.limiter = SlidingWindowCounterRateLimiter(storage or storage_for(settings))
        self.api_limit = parse(settings.api_rate_limit)
        self.auth_limit = parse(settings.auth_rate_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if not self.enabled or scope["type"] != "http" or not path.startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        bucket, item = (
            ("auth", self.auth_limit) if path.startswith(AUTH_PREFIX) else ("api", self.api_limit)
        )
        client = scope.get("client")
        key = client[0] if client else "unknown"
        try:
            allowed = await self.limiter.hit(item, bucket, key)
        except Exception as exc:  # noqa: BLE001 - any storage failure is handled the same way
            log.warning("rate limit storage unavailable", error=type(exc).__name__)
            if fails_closed(method, path):
                await _reply(
                    scope,
                    send,
                    503,
                    "rate_limit_unavailable",
                    "this request cannot be accepted right now; try again shortly",
                    {"Retry-After": "1"},
                )
                return
            allowed = True
        if allowed:
            await self.app(scope, receive, send)
            return
        RATE_LIMITED.labels(bucket).inc()
        retry_after = await self._retry_after(item, bucket, key)
        await _reply(
            scope,
            send,
            429,
            "rate_limited",
            "too many requests; slow down",
            {"Retry-After": str(retry_after)},
            {"limit": str(item)},
        )

    async def _retry_after(self, item: RateLimitItem, bucket: str, key: str) -> int:
        try:
            stats = await self.limiter.get_window_stats(item, bucket, key)
            return max(1, math.ceil(stats.reset_time - time.time()))
        except Exception:  # noqa: BLE001 - the refusal stands even if the reset time is unknown
            return item.get_expiry()


async def _reply(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str],
    details: dict[str, str] | None = None,
) -> None:
    request_id = scope.get("state", {}).get("request_id")
    body = json.dumps(
        {
            "error": {
                "code": code,
                "message": message,
                "details": details or {},
                "request_id": request_id,
            }
        }
    ).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
