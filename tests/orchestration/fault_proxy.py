"""A fault-injecting HTTP proxy in front of a real provider (localstripe).

Each request to a watched path takes the next planned fault (then passes through once the
plan is used up). The faults are what a network and a provider really do:

- ``Fault.STATUS_500`` / ``Fault.STATUS_429``: the provider answers with an error and does
  nothing (Stripe-shaped error body; 429 with ``Retry-After``);
- ``Fault.SLOW_UNSENT``: no answer within the client's timeout, and the request never reaches
  the provider;
- ``Fault.SLOW_AFTER_SUCCESS``: the provider acts, but its answer comes too late;
- ``Fault.LOST_AFTER_SUCCESS``: the provider acts, then the connection drops before the
  answer (the response is lost).
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from enum import StrEnum

import httpx
from aiohttp import web


class Fault(StrEnum):
    STATUS_500 = "status_500"
    STATUS_429 = "status_429"
    SLOW_UNSENT = "slow_unsent"
    SLOW_AFTER_SUCCESS = "slow_after_success"
    LOST_AFTER_SUCCESS = "lost_after_success"


class FaultProxy:
    """Forwards to ``upstream``; requests whose ``METHOD path`` starts with a planned prefix
    meet that plan's faults first."""

    def __init__(self, upstream: str, *, slow_seconds: float = 3.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.slow_seconds = slow_seconds
        self.plans: dict[str, deque[Fault]] = {}
        self.seen: list[tuple[str, Fault | None]] = []
        self._runner: web.AppRunner | None = None
        self._http = httpx.AsyncClient(timeout=30)
        self.url = ""

    def plan(self, prefix: str, *faults: Fault) -> None:
        """The next requests matching ``prefix`` (e.g. ``POST /v1/payment_intents``) fail so."""
        self.plans.setdefault(prefix, deque()).extend(faults)

    def injected(self, fault: Fault) -> int:
        """How many requests met ``fault``."""
        return sum(1 for _, met in self.seen if met is fault)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Held-back answers (slow faults) are dropped at once when the proxy stops.
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        await self._http.aclose()
        if self._runner is not None:
            await self._runner.cleanup()

    def _next_fault(self, request: web.Request) -> Fault | None:
        line = f"{request.method} {request.path}"
        for prefix, faults in self.plans.items():
            if line.startswith(prefix) and faults:
                return faults.popleft()
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._next_fault(request)
        self.seen.append((f"{request.method} {request.path}", fault))
        if fault is Fault.STATUS_500:
            return _stripe_error(500, "api_error", "An unknown error occurred (injected).")
        if fault is Fault.STATUS_429:
            response = _stripe_error(429, "rate_limit_error", "Too many requests (injected).")
            response.headers["Retry-After"] = "1"
            return response
        if fault is Fault.SLOW_UNSENT:
            await asyncio.sleep(self.slow_seconds)
            return _stripe_error(500, "api_error", "too late (injected)")
        upstream = await self._forward(request)
        if fault is Fault.SLOW_AFTER_SUCCESS:
            await asyncio.sleep(self.slow_seconds)
        if fault is Fault.LOST_AFTER_SUCCESS:
            assert request.transport is not None
            request.transport.abort()  # the provider acted; its answer never arrives
            raise asyncio.CancelledError
        return web.Response(
            status=upstream.status_code,
            body=upstream.content,
            content_type="application/json",
            headers={
                k: v for k, v in upstream.headers.items() if k.lower().startswith("idempotent")
            },
        )

    async def _forward(self, request: web.Request) -> httpx.Response:
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "idempotency-key", "content-type", "stripe-version")
        }
        return await self._http.request(
            request.method,
            f"{self.upstream}{request.path_qs}",
            content=await request.read(),
            headers=headers,
        )


def _stripe_error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)
