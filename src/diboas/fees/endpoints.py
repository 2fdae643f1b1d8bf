"""/api/v1 routes of the fees package."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["fees"])
