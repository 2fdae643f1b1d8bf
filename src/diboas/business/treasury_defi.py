"""The treasury's DeFi: an organisation's admins invest treasury money into the DeFi
strategies and withdraw it back; everyone who may read the treasury sees the positions, their
value and yield.

These are DeFi's own steps (``defi.steps``) with the organisation as the owner
(``defi.owners.Owner.organisation``): the hold is on the treasury, the position and the
ledger's ``defi`` account are the organisation's, a withdrawal pays into the treasury, the
organisation's risk profile applies, and every event is in the organisation's audit log. The
admin who acts is the transaction's user (as for a funding), so the movement's ``id`` is
pollable by them at ``/api/v1/transactions/{id}``, and by every reader of the treasury at
``…/treasury/defi/transactions/{id}`` (``transaction``).

The API's routes (``treasury_defi_endpoints``) and the business pages call these functions,
so both apply the same rules. Each takes the ``Principal`` that ``access.org_access`` (or
``access.authorise_member`` for a page) admitted for the matching ``Action``:
``READ_TREASURY_DEFI`` to read, ``INVEST_TREASURY`` to invest, withdraw or set the risk
profile. Vaults are read outside any transaction (a chain call never holds a connection).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.api.deps import Database
from diboas.banking import repository as transactions
from diboas.banking.schemas import TransactionOut
from diboas.banking.service.common import transaction_out
from diboas.business.access import Principal
from diboas.business.schemas import TreasuryDefiOut, TreasuryInvestIn, TreasuryPositionsOut
from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.defi import repository, schemas, steps, views
from diboas.defi.errors import RiskNotAcknowledgedError, StrategyNotFoundError
from diboas.defi.owners import Owner
from diboas.defi.repository import Position, Strategy
from diboas.defi.service import catalog
from diboas.defi.service.movements import Accepted, own_position
from diboas.kit.errors import DomainError, NotFoundError
from diboas.kit.money import format_amount, parse_amount
from diboas.ledger.idempotency import IdempotencyPolicy, StoredResponse, run_idempotent
from diboas.orchestration import saga

Work = Callable[[AsyncSession], Awaitable[Accepted]]


class IdempotencyKeyRequiredError(DomainError):
    """Moving treasury money needs an ``Idempotency-Key``: a retry of a lost answer must
    never invest (or withdraw) twice."""

    status_code = 400
    code = "idempotency_key_required"


@dataclass(frozen=True, slots=True)
class RiskProfile:
    """The organisation's risk profile: the highest strategy risk score invested in without
    an acknowledgement; ``source`` is ``set`` (by ``set_by``, an admin) or ``default``."""

    max_risk_score: int
    source: str


def _owner(principal: Principal) -> Owner:
    return Owner.organisation(principal.organisation_id)


def _admin(principal: Principal) -> uuid.UUID:
    if principal.user is None:  # INVEST_TREASURY admits no API key
        raise RuntimeError("moving treasury money needs a signed-in organisation admin")
    return principal.user.id


async def strategies(db: Database, services: dict[str, Any]) -> list[catalog.StrategyView]:
    """The strategy catalog (the same for everyone) with APY and availability."""
    return await steps.catalog_views(db, services)


async def risk_profile(db: Database, principal: Principal) -> RiskProfile:
    """The organisation's risk profile (the default, 2, until an admin sets one)."""
    found = await db.run(lambda s: repository.get_risk_profile(s, _owner(principal)))
    if found is None:
        return RiskProfile(catalog.DEFAULT_MAX_RISK, "default")
    return RiskProfile(found, "set")


async def set_risk_profile(
    db: Database, principal: Principal, max_risk_score: int, context: AuditContext
) -> RiskProfile:
    """Set the organisation's risk profile (an admin, ``INVEST_TREASURY``); audited as
    ``business.treasury_defi_risk_profile``."""
    admin = _admin(principal)

    async def write(session: AsyncSession) -> None:
        await repository.set_risk_profile(session, _owner(principal), max_risk_score, set_by=admin)
        await audit.record(
            session,
            context,
            "business.treasury_defi_risk_profile",
            subject_type="organisation",
            subject_id=principal.organisation_id,
            details={"max_risk_score": max_risk_score},
        )

    await db.run(write)
    return RiskProfile(max_risk_score, "set")


async def invest(
    db: Database,
    services: dict[str, Any],
    principal: Principal,
    body: TreasuryInvestIn,
    context: AuditContext,
) -> Work:
    """Estimate the gas for investing ``body.amount`` of the treasury (outside any
    transaction); returns the unit of work that accepts it (run it once per key with
    ``accept_once``). Refusals: 404 strategy, 409 strategy unavailable, 422 below minimum,
    risk not acknowledged (``record_risk_refusal`` audits it), insufficient funds; 403
    kyc_required / email_verification_required for the acting admin; 503 vault unavailable."""
    request = schemas.InvestIn(
        strategy_id=body.strategy_id, amount=body.amount, acknowledge_risk=body.acknowledge_risk
    )
    return await steps.invest(
        db,
        services,
        user_id=_admin(principal),
        body=request,
        context=context,
        owner=_owner(principal),
    )


async def withdraw(
    db: Database,
    services: dict[str, Any],
    principal: Principal,
    position_id: uuid.UUID,
    amount: str | None,
    context: AuditContext,
) -> Work:
    """Preview a withdrawal of ``amount`` USD of a treasury position's value (all of it with
    None) at the vault; returns the unit of work accepting it. Refusals: 404 another
    organisation's or unknown position, 409 not open, 422 malformed amount / locked / more than
    it is worth / fee and gas above the amount; 503 vault unavailable."""
    if amount is not None:
        parse_amount(amount, 2)  # a malformed amount is refused before anything is read
    return await steps.withdraw(
        db,
        services,
        user_id=_admin(principal),
        position_id=position_id,
        amount=amount,
        context=context,
        owner=_owner(principal),
    )


async def accept_once(
    db: Database, principal: Principal, *, key: str, request: Any, work: Work
) -> StoredResponse:
    """Run an accepted movement once for the caller's ``key`` (the API's Idempotency-Key, a
    page's form key): the first answer — the movement (201) or a refusal — is stored with
    its effect and replayed for the same key and request; another request under the same key
    is refused. The body is ``defi.schemas.MovementOut`` as JSON."""

    async def accept(session: AsyncSession) -> tuple[int, Any]:
        return 201, views.movement_out(await work(session)).model_dump(mode="json")

    return await run_idempotent(
        db.sessions,
        scope=principal.idempotency_scope,
        key=key,
        request=request,
        work=accept,
        policy=IdempotencyPolicy.from_settings(db.settings),
    )


async def record_risk_refusal(
    db: Database, principal: Principal, context: AuditContext, refusal: RiskNotAcknowledgedError
) -> None:
    """Audit (in its own transaction) an investment refused for want of a risk
    acknowledgement: ``business.treasury_defi_risk_refused``."""
    await audit.record_separately(
        db.sessions,
        context,
        "business.treasury_defi_risk_refused",
        outcome="failure",
        subject_type="organisation",
        subject_id=principal.organisation_id,
        details=refusal.details,
    )


async def _read(
    db: Database, owner: Owner, position_id: uuid.UUID | None
) -> tuple[list[Position], dict[str, Strategy]]:
    async def read(session: AsyncSession) -> tuple[list[Position], dict[str, Strategy]]:
        if position_id is None:
            positions = await repository.owner_positions(session, owner)
        else:
            positions = [await own_position(session, position_id, owner)]
        found: dict[str, Strategy] = {}
        for strategy_id in {p.strategy_id for p in positions}:
            strategy = await repository.get_strategy(session, strategy_id)
            if strategy is None:
                raise StrategyNotFoundError(
                    "no such strategy", details={"strategy_id": strategy_id}
                )
            found[strategy_id] = strategy
        return positions, found

    return await db.run(read)


def _totals_out(totals: views.Totals) -> TreasuryDefiOut:
    return TreasuryDefiOut(
        value_usd=format_amount(totals.value_usd, 2),
        principal_usd=format_amount(totals.principal_usd, 2),
        accrued_yield_usd=format_amount(totals.accrued_yield_usd, 2),
        live_positions=totals.live_positions,
    )


async def positions(
    db: Database, services: dict[str, Any], principal: Principal
) -> TreasuryPositionsOut:
    """The organisation's positions, newest first, valued at the vault's share price now,
    with the live ones' totals (value, principal, accrued yield in USD)."""
    found, by_id = await _read(db, _owner(principal), None)
    out, totals = await views.positions_with_totals(services, db.settings, found, by_id)
    return TreasuryPositionsOut(
        items=out.items, total_value_usd=out.total_value_usd, totals=_totals_out(totals)
    )


async def position(
    db: Database, services: dict[str, Any], principal: Principal, position_id: uuid.UUID
) -> schemas.PositionOut:
    """One of the organisation's positions (404 for any other)."""
    found, by_id = await _read(db, _owner(principal), position_id)
    return (await views.positions_out(services, db.settings, found, by_id)).items[0]


_DEFI_TYPES = ("defi_deposit", "defi_withdraw")


async def transaction(
    db: Database, principal: Principal, transaction_id: uuid.UUID
) -> TransactionOut:
    """One of the organisation's DeFi movements with its saga's steps (whoever of its admins
    made it); 404 for any other transaction."""

    async def read(session: AsyncSession) -> TransactionOut:
        found = await transactions.get_transaction(session, transaction_id)
        if (
            found is None
            or found.type not in _DEFI_TYPES
            or found.metadata.get("organisation_id") != str(principal.organisation_id)
        ):
            raise NotFoundError(
                "no such transaction", details={"transaction_id": str(transaction_id)}
            )
        steps = None if found.saga_state is None else await saga.steps(session, found.id)
        return transaction_out(found, steps)

    return await db.run(read)


async def summary(db: Database, services: dict[str, Any], principal: Principal) -> TreasuryDefiOut:
    """The treasury's DeFi in USD now: value, principal and accrued yield of its live
    positions (shown by ``GET …/treasury`` as ``defi``)."""
    return (await positions(db, services, principal)).totals
