"""/api/v1 routes of the banking package: money movements, linked bank accounts, history.

Every money movement takes an optional ``Idempotency-Key`` header: the first request's
answer (success or refusal, with its status code) is stored in the same transaction as its
effect and replayed for the same key and body; the same key with another body is 422, and a
key whose request is still running is 409.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.banking import schemas, service
from diboas.banking import tasks as _tasks  # noqa: F401 - registers the jobs movements stage
from diboas.banking.repository import HistoryFilter
from diboas.banking.service import Movement, bank_accounts, history
from diboas.compliance import audit, limits, screening
from diboas.compliance.audit import AuditContext
from diboas.identity import repository as users
from diboas.identity.dependencies import Caller, CurrentCaller, requires
from diboas.kit.errors import DomainError
from diboas.ledger.idempotency import IdempotencyPolicy, run_idempotent

router = APIRouter(tags=["banking"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Makes a retry safe: the same key and body give the first answer again.",
    ),
]
MovementWork = Callable[[AsyncSession, AuditContext], Awaitable[Movement]]
MovementIn = schemas.DepositIn | schemas.WithdrawalIn | schemas.TransferIn


async def _audit_refusal(
    db: DatabaseDep,
    context: AuditContext,
    caller: Caller,
    movement: limits.Movement,
    body: MovementIn,
    refusal: DomainError,
) -> None:
    # The movement's transaction rolled back with the refusal; its audit row is written in
    # a transaction of its own.
    if isinstance(refusal, limits.REFUSALS):
        await limits.record_refusal(
            db.sessions,
            context,
            user=caller.user,
            movement=movement,
            amount_usd=Decimal(body.amount),  # parsed already: the limit check comes after
            error=refusal,
        )
    elif isinstance(refusal, screening.RecipientScreeningError) and isinstance(
        body, schemas.TransferIn
    ):
        email = str(body.recipient_email)
        recipient = await db.run(lambda s: users.find_by_email(s, email))
        if recipient is not None:
            await screening.record_refusal(db.sessions, context, recipient=recipient)


async def _movement(
    request: Request,
    db: DatabaseDep,
    caller: Caller,
    movement: limits.Movement,
    body: MovementIn,
    key: str | None,
    work: MovementWork,
) -> JSONResponse:
    context = audit.request_context(request, caller.user)
    try:
        return await _accept(request, db, caller, context, body, key, work)
    except DomainError as refusal:
        await _audit_refusal(db, context, caller, movement, body, refusal)
        raise


async def _accept(
    request: Request,
    db: DatabaseDep,
    caller: Caller,
    context: AuditContext,
    body: MovementIn,
    key: str | None,
    work: MovementWork,
) -> JSONResponse:
    accepted: list[Movement] = []

    async def accept(session: AsyncSession) -> tuple[int, Any]:
        movement = await work(session, context)
        accepted[:] = [movement]
        return 201, service.transaction_out(movement.primary).model_dump(mode="json")

    if key is None:
        status_code, content = await db.run(accept)
        replayed = False
    else:
        stored = await run_idempotent(
            db.sessions,
            scope=f"user:{caller.id}",
            key=key,
            request={
                "method": request.method,
                "path": request.url.path,
                "body": body.model_dump(mode="json"),
            },
            work=accept,
            policy=IdempotencyPolicy.from_settings(db.settings),
        )
        status_code, content, replayed = stored.status_code, stored.body, stored.replayed
    if accepted and not replayed:
        service.count_status(*accepted[0].transactions)
    if replayed and isinstance(content, dict) and isinstance(content.get("error"), dict):
        # A replayed refusal is rendered in the one error format, with this request's id.
        content = {"error": {**content["error"], "request_id": context.request_id}}
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(content, status_code=status_code, headers=headers)


@router.post(
    "/banking/deposits",
    status_code=201,
    response_model=schemas.TransactionOut,
    dependencies=[requires("banking:deposit")],
    summary="Deposit from a card or a linked bank account",
)
async def create_deposit(
    body: schemas.DepositIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _movement(
        request,
        db,
        caller,
        "deposit",
        body,
        idempotency_key,
        lambda s, ctx: service.create_deposit(
            s, settings, user_id=caller.id, request=body, context=ctx
        ),
    )


@router.post(
    "/banking/withdrawals",
    status_code=201,
    response_model=schemas.TransactionOut,
    dependencies=[requires("banking:withdraw")],
    summary="Withdraw to a linked bank account",
)
async def create_withdrawal(
    body: schemas.WithdrawalIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _movement(
        request,
        db,
        caller,
        "withdrawal",
        body,
        idempotency_key,
        lambda s, ctx: service.create_withdrawal(
            s, settings, user_id=caller.id, request=body, context=ctx
        ),
    )


@router.post(
    "/banking/transfers",
    status_code=201,
    response_model=schemas.TransactionOut,
    dependencies=[requires("banking:transfer")],
    summary="Send money to another user, at once",
)
async def create_transfer(
    body: schemas.TransferIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    return await _movement(
        request,
        db,
        caller,
        "transfer",
        body,
        idempotency_key,
        lambda s, ctx: service.create_transfer(
            s, settings, user_id=caller.id, request=body, context=ctx
        ),
    )


# --- linked bank accounts --------------------------------------------------------------------


@router.post(
    "/banking/bank-accounts",
    status_code=201,
    dependencies=[requires("bank_accounts:manage")],
    summary="Link a bank account",
)
async def link_bank_account(
    body: schemas.BankAccountIn,
    caller: CurrentCaller,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
) -> schemas.BankAccountOut:
    context = audit.request_context(request, caller.user)
    account = await db.run(
        lambda s: bank_accounts.link(s, settings, user_id=caller.id, request=body, context=context)
    )
    return service.bank_account_out(account)


@router.get(
    "/banking/bank-accounts",
    dependencies=[requires("bank_accounts:manage")],
    summary="Linked bank accounts",
)
async def list_bank_accounts(
    caller: CurrentCaller, db: DatabaseDep
) -> list[schemas.BankAccountOut]:
    accounts = await db.run(lambda s: bank_accounts.list_for(s, caller.id))
    return [service.bank_account_out(a) for a in accounts]


@router.delete(
    "/banking/bank-accounts/{bank_account_id}",
    status_code=204,
    dependencies=[requires("bank_accounts:manage")],
    summary="Unlink a bank account",
)
async def remove_bank_account(
    bank_account_id: uuid.UUID, caller: CurrentCaller, request: Request, db: DatabaseDep
) -> Response:
    context = audit.request_context(request, caller.user)
    await db.run(
        lambda s: bank_accounts.remove(
            s, user_id=caller.id, bank_account_id=bank_account_id, context=context
        )
    )
    return Response(status_code=204)


# --- history -------------------------------------------------------------------------------------


@router.get(
    "/transactions",
    dependencies=[requires("transactions:read")],
    summary="The caller's transactions, newest first",
)
async def list_transactions(
    caller: CurrentCaller,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=history.MAX_PAGE)] = 20,
    cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    type_: Annotated[schemas.TransactionType | None, Query(alias="type")] = None,
    status: Annotated[schemas.TransactionStatus | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601, inclusive")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601, exclusive")] = None,
) -> schemas.TransactionPage:
    filters = HistoryFilter(type=type_, status=status, since=since, until=until)
    found = await db.run(
        lambda s: history.page(s, user_id=caller.id, limit=limit, cursor=cursor, filters=filters)
    )
    return schemas.TransactionPage(
        items=[service.transaction_out(t) for t in found.items], next_cursor=found.next_cursor
    )


@router.get(
    "/transactions/{transaction_id}",
    dependencies=[requires("transactions:read")],
    summary="One of the caller's transactions",
)
async def get_transaction(
    transaction_id: uuid.UUID, caller: CurrentCaller, db: DatabaseDep
) -> schemas.TransactionOut:
    found, steps = await db.run(
        lambda s: history.get_with_steps(s, user_id=caller.id, transaction_id=transaction_id)
    )
    return service.transaction_out(found, steps)
