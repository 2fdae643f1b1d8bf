"""/api/v1 routes of the banking package."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["banking"])
