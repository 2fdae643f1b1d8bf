"""The hub: who is listening for which user's updates, and how updates reach them.

- ``LocalHub`` (no Redis): subscribers in this process get what this process publishes —
  enough for one node (``diboas run`` runs the API and the worker in one process).
- ``RedisHub`` (``DIBOAS_REDIS_URL``): every process publishes to Redis (channel
  ``diboas:user:<id>``) and one pattern subscription per process fans messages out to that
  process's local subscribers, so an update made by any worker reaches a WebSocket held by any
  API process.

Delivery is best effort by design: an update is a hint to refresh (the API stays the source of
truth), a subscriber that does not keep up loses its oldest hints, never blocks a publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, Protocol

import redis.asyncio as redis
import structlog

log = structlog.get_logger(__name__)

Event = dict[str, Any]
# Hints a subscriber may have waiting before the oldest are dropped.
QUEUE_SIZE = 100
_CHANNEL = "diboas:user:"


class Hub(Protocol):
    """Publishes a user's updates to every subscriber of that user."""

    async def publish(self, user_id: uuid.UUID, events: list[Event]) -> None: ...

    def subscribe(
        self, user_id: uuid.UUID
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[Event]]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class LocalHub:
    """Subscribers in this process, each with a bounded queue."""

    def __init__(self) -> None:
        self._queues: dict[uuid.UUID, set[asyncio.Queue[Event]]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._queues.clear()

    async def publish(self, user_id: uuid.UUID, events: list[Event]) -> None:
        self.deliver(user_id, events)

    def deliver(self, user_id: uuid.UUID, events: list[Event]) -> None:
        """Hand events to this process's subscribers of ``user_id``."""
        for queue in self._queues.get(user_id, ()):
            for event in events:
                if queue.full():
                    queue.get_nowait()  # a slow reader loses its oldest hint
                queue.put_nowait(event)

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._queues.setdefault(user_id, set()).add(queue)
        try:
            yield queue
        finally:
            listeners = self._queues.get(user_id, set())
            listeners.discard(queue)
            if not listeners:
                self._queues.pop(user_id, None)


class RedisHub:
    """Redis pub/sub between processes, a ``LocalHub`` within each."""

    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url)
        self._local = LocalHub()
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        # Not waited for: the platform starts (and serves) while Redis is down; the reader
        # keeps trying, and updates published meanwhile are lost (they are hints).
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="realtime-redis")

    async def ready(self, seconds: float) -> None:
        """Wait until this process listens to Redis (tests; a health check could use it)."""
        await asyncio.wait_for(self._ready.wait(), timeout=seconds)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._redis.aclose()

    async def publish(self, user_id: uuid.UUID, events: list[Event]) -> None:
        try:
            await self._redis.publish(f"{_CHANNEL}{user_id}", json.dumps(events))
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            log.warning("realtime: Redis unreachable; update not published")

    def subscribe(
        self, user_id: uuid.UUID
    ) -> contextlib.AbstractAsyncContextManager[asyncio.Queue[Event]]:
        return self._local.subscribe(user_id)

    async def _read(self) -> None:
        while True:  # a lost Redis connection is opened again; hints meanwhile are lost
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.psubscribe(f"{_CHANNEL}*")
                    self._ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "pmessage":
                            continue
                        channel = message["channel"].decode()
                        user_id = uuid.UUID(channel.removeprefix(_CHANNEL))
                        self._local.deliver(user_id, json.loads(message["data"]))
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self._ready.clear()
                log.warning("realtime: Redis connection lost; subscribing again")
                await asyncio.sleep(1)


def hub_for(redis_url: str | None) -> Hub:
    """Redis-backed when Redis is configured, in process otherwise."""
    return RedisHub(redis_url) if redis_url else LocalHub()
