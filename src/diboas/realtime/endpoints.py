"""``/api/v1/ws``: a customer's live updates over a WebSocket.

A browser cannot put a token in a WebSocket's headers, and a token in the URL ends up in access
logs, so an API client's first message authenticates: ``{"type": "auth", "token": "<access
token>"}`` within ``AUTH_SECONDS``; the web app's pages are signed in by their session cookie
(only from the platform's own origin). The server answers ``{"type": "ready"}``, then pushes
``{"type": "transaction", "transaction": {id, type, status, currency}}`` and
``{"type": "balance"}`` (read the balance again) as they happen, and ``{"type": "ping"}`` every
``PING_SECONDS`` — when it also checks that the session is still alive: a revoked session's
socket is closed (code 4401).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from diboas.identity import repository as users
from diboas.identity import tokens
from diboas.identity.repository import User
from diboas.realtime.hub import Event, Hub
from diboas.web.security import SESSION_COOKIE, CookiePolicy

log = structlog.get_logger(__name__)
router = APIRouter(tags=["realtime"])

AUTH_SECONDS = 10.0
PING_SECONDS = 25.0
UNAUTHORIZED = 4401  # the 4xxx private range, mirroring HTTP 401


async def _live_user(
    websocket: WebSocket, session_id: uuid.UUID, user_id: uuid.UUID
) -> User | None:
    async with websocket.app.state.sessions() as session:
        user = await users.user_of_active_session(session, session_id, user_id)
    return user if user is not None and user.status == "active" else None


def _cookie_session(websocket: WebSocket) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(session id, user id) from the web app's signed session cookie, for a socket opened by
    the platform's own pages. The Origin must be this host: a page elsewhere cannot open a
    socket riding on the customer's cookie (cross-site WebSocket hijacking)."""
    web = getattr(websocket.app.state, "web", None)
    origin = websocket.headers.get("origin")
    if web is None or origin is None or urlsplit(origin).netloc != websocket.headers.get("host"):
        return None
    settings = websocket.app.state.settings
    secure = settings.env == "production" or websocket.url.scheme == "wss"
    opened: tuple[uuid.UUID, uuid.UUID] | None = web.keys.open_session(
        websocket.cookies.get(CookiePolicy(secure=secure).name(SESSION_COOKIE))
    )
    return opened


async def _authenticate(websocket: WebSocket) -> tuple[User, uuid.UUID] | None:
    cookie = _cookie_session(websocket)
    if cookie is not None:
        session_id, user_id = cookie
        user = await _live_user(websocket, session_id, user_id)
        return None if user is None else (user, session_id)
    try:
        first: Any = await asyncio.wait_for(websocket.receive_json(), AUTH_SECONDS)
        token = first["token"] if first.get("type") == "auth" else None
        claims = tokens.verify_access_token(websocket.app.state.settings, str(token))
    except (TimeoutError, ValueError, KeyError, AttributeError, tokens.InvalidTokenError):
        return None
    user = await _live_user(websocket, claims.session_id, claims.user_id)
    return None if user is None else (user, claims.session_id)


@router.websocket("/ws")
async def live_updates(websocket: WebSocket) -> None:
    """Push the signed-in customer's transaction and balance changes."""
    await websocket.accept()
    signed_in = await _authenticate(websocket)
    if signed_in is None:
        await websocket.send_json({"type": "error", "code": "unauthorized"})
        await websocket.close(code=UNAUTHORIZED)
        return
    user, session_id = signed_in
    hub: Hub = websocket.app.state.hub
    async with hub.subscribe(user.id) as queue:
        await websocket.send_json({"type": "ready"})
        closed = asyncio.create_task(_until_closed(websocket))
        try:
            await _forward(websocket, queue, closed, user, session_id)
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
                await closed


async def _forward(
    websocket: WebSocket,
    queue: asyncio.Queue[Event],
    closed: asyncio.Task[None],
    user: User,
    session_id: uuid.UUID,
) -> None:
    while not closed.done():
        waiting = asyncio.create_task(queue.get())
        done, _ = await asyncio.wait(
            {waiting, closed}, timeout=PING_SECONDS, return_when="FIRST_COMPLETED"
        )
        if waiting in done:
            await websocket.send_json(waiting.result())
            continue
        waiting.cancel()
        if closed in done:
            return
        if await _live_user(websocket, session_id, user.id) is None:
            await websocket.close(code=UNAUTHORIZED)
            return
        await websocket.send_json({"type": "ping"})


async def _until_closed(websocket: WebSocket) -> None:
    # Whatever the client sends after signing in is ignored; its leaving ends the stream.
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
