"""/api/v1 routes of the balances package."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["balances"])
