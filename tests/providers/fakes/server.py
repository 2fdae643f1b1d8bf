"""Runs an ASGI app with uvicorn on a free loopback port in a background thread, and the
fault injection every fake shares."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp


@dataclass(frozen=True)
class Fault:
    """What the next request gets instead of its normal answer."""

    status: int = 500
    retry_after: int | None = None
    delay: float = 0.0


@dataclass
class Faults:
    """A queue of faults, consumed one per request (thread-safe: deque ops are atomic)."""

    queue: deque[Fault] = field(default_factory=deque)

    def fail_next(self, status: int, *, retry_after: int | None = None, times: int = 1) -> None:
        for _ in range(times):
            self.queue.append(Fault(status=status, retry_after=retry_after))

    def delay_next(self, seconds: float) -> None:
        self.queue.append(Fault(status=0, delay=seconds))

    def clear(self) -> None:
        self.queue.clear()

    def take(self) -> Fault | None:
        try:
            return self.queue.popleft()
        except IndexError:
            return None


async def apply_fault(
    faults: Faults, error: Callable[[int, Fault], JSONResponse]
) -> Response | None:
    """The injected answer for this request, if a fault is queued (a delay then proceeds)."""
    fault = faults.take()
    if fault is None:
        return None
    if fault.delay:
        await asyncio.sleep(fault.delay)
        return None
    response = error(fault.status, fault)
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response


def request_json_or_none(body: bytes) -> object | None:
    try:
        return json.loads(body)
    except ValueError:
        return None


class LocalServer:
    """``with LocalServer(app) as url:`` serves ``app`` at ``url`` until the block ends."""

    def __init__(self, app: ASGIApp) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", loop="asyncio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the local vendor server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    return value[7:] if value.startswith("Bearer ") else None


def magic_outcome(last_name: str) -> str:
    """The outcome every KYC fake shares with our sandbox: ``Reject`` rejects, ``Review``
    needs review, ``Pending`` never finishes (to exercise bounded polling), else approve."""
    magic = last_name.strip().casefold()
    return {"reject": "reject", "review": "review", "pending": "pending"}.get(magic, "approve")
