"""A fault-injecting JSON-RPC proxy in front of anvil (the chain counterpart of
``tests.orchestration.fault_proxy``): requests for a planned JSON-RPC method meet that plan's
faults first, then pass through.

- ``RpcFault.LOST_AFTER_SEND``: the node receives the request and acts (a transaction enters
  its pool and is mined), then the connection drops before the answer;
- ``RpcFault.DROPPED_BEFORE_NODE``: the connection drops and the node never sees the request
  (the client cannot tell this from the one above).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections import deque
from enum import StrEnum
from typing import Any

import httpx
from aiohttp import web


class RpcFault(StrEnum):
    LOST_AFTER_SEND = "lost_after_send"
    DROPPED_BEFORE_NODE = "dropped_before_node"


class RpcFaultProxy:
    """Forwards JSON-RPC to ``upstream``; ``plan(method, *faults)`` arms faults."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.plans: dict[str, deque[RpcFault | None]] = {}
        self.injected: list[tuple[str, RpcFault]] = []
        self._runner: web.AppRunner | None = None
        self._http = httpx.AsyncClient(timeout=30)
        self.url = ""

    def plan(self, method: str, *faults: RpcFault | None) -> None:
        """The next requests for ``method`` meet these faults in turn (None: passes)."""
        self.plans.setdefault(method, deque()).extend(faults)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
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

    def _fault(self, body: Any) -> RpcFault | None:
        method = body.get("method") if isinstance(body, dict) else None
        faults = self.plans.get(str(method))
        if not faults:
            return None
        fault = faults.popleft()
        if fault is not None:
            self.injected.append((str(method), fault))
        return fault

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        fault = self._fault(json.loads(raw))
        if fault is not RpcFault.DROPPED_BEFORE_NODE:
            upstream = await self._http.post(
                self.upstream, content=raw, headers={"content-type": "application/json"}
            )
        if fault is not None:
            assert request.transport is not None
            request.transport.abort()  # the client never gets an answer
            raise asyncio.CancelledError
        return web.Response(
            status=upstream.status_code, body=upstream.content, content_type="application/json"
        )
