"""HTTP tests go through the ASGI app, with its lifespan, on the test database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.engine import URL

from diboas.api.app import create_app
from diboas.db.urls import plain_url
from diboas.settings import Settings


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def client(database_url: URL) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(env="test"), database_url=plain_url(database_url))
    async for c in _client(app):
        yield c


@pytest.fixture
async def client_without_database() -> AsyncIterator[httpx.AsyncClient]:
    # Port 9 (discard) on loopback: nothing listens, connections are refused at once.
    app = create_app(Settings(env="test"), database_url="postgresql://postgres@127.0.0.1:9/none")
    async for c in _client(app):
        yield c
