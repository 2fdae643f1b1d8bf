"""/api/v1 routes of the ledger package: the admin's ledger check."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.deps import DatabaseDep
from diboas.compliance import audit
from diboas.identity.dependencies import CurrentCaller, requires
from diboas.ledger.verify import verify_ledger

router = APIRouter(tags=["ledger"])


class BreakOut(BaseModel):
    """One thing found wrong in the ledger."""

    kind: str
    subject: str
    message: str


class LedgerVerifyOut(BaseModel):
    """What ``ledger verify`` checked and every break it found (``ok`` when there is none)."""

    ok: bool
    entries: int
    postings: int
    accounts: int
    breaks: list[BreakOut]


@router.get(
    "/admin/ledger/verify",
    dependencies=[requires("admin:ledger")],
    summary="Check every entry, balance and hash chain of the ledger",
)
async def verify(caller: CurrentCaller, request: Request, db: DatabaseDep) -> LedgerVerifyOut:
    engine: AsyncEngine = request.app.state.engine
    # verify_ledger makes its connection's transaction REPEATABLE READ READ ONLY, so it needs
    # a connection of its own rather than a unit of work's session.
    async with engine.connect() as conn:
        report = await verify_ledger(conn)
    result = LedgerVerifyOut(
        ok=report.ok,
        entries=report.entries,
        postings=report.postings,
        accounts=report.accounts,
        breaks=[BreakOut(kind=b.kind, subject=b.subject, message=b.message) for b in report.breaks],
    )
    context = audit.request_context(request, caller.user)
    await db.run(
        lambda s: audit.record(
            s,
            context,
            "ledger.verify",
            outcome="success" if report.ok else "failure",
            details={
                "entries": report.entries,
                "postings": report.postings,
                "accounts": report.accounts,
                "breaks": len(report.breaks),
            },
        )
    )
    return result
