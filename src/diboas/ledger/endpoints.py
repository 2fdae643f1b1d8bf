"""/api/v1 routes of the ledger package."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["ledger"])
