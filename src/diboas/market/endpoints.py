"""/api/v1 routes of the market package."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["market"])
