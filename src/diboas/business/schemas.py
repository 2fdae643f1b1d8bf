"""Business request and response bodies. Amounts are decimal strings at their asset's scale."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, EmailStr, Field

from diboas.balances.schemas import BalancesOut
from diboas.banking.schemas import Amount, Currency
from diboas.defi.schemas import Amount as DefiAmount
from diboas.defi.schemas import PositionOut, StrategyId
from diboas.kit.schemas import StrictModel, Text

OrgRoleName = Literal["admin", "member", "viewer"]
Scope = Literal[
    "organisation:read",
    "treasury:read",
    "transactions:read",
    "payouts:read",
    "payouts:write",
    "audit:read",
]


class OrganisationIn(StrictModel):
    """A new organisation; its creator becomes its first admin."""

    name: Text(200)  # type: ignore[valid-type]


class OrganisationOut(BaseModel):
    """An organisation, with the caller's role in it (None for an API key)."""

    id: uuid.UUID
    name: str
    created_at: datetime
    role: OrgRoleName | None = None


class MemberIn(StrictModel):
    """Add an existing diBoaS user, by email, with a role."""

    email: EmailStr
    role: OrgRoleName


class MemberRoleIn(StrictModel):
    """A member's new role."""

    role: OrgRoleName


class MemberOut(BaseModel):
    """A member of the organisation."""

    user_id: uuid.UUID
    email: str
    full_name: str
    role: OrgRoleName
    created_at: datetime


class FundingIn(StrictModel):
    """Move money from the admin's own banking balance into the organisation's treasury."""

    amount: Amount
    currency: Currency
    note: Text(500) | None = None  # type: ignore[valid-type]


class FundingOut(BaseModel):
    """A funding: the admin's ``transfer_out`` transaction (pollable at
    ``/api/v1/transactions/{id}``) and the treasury it went to."""

    id: uuid.UUID
    status: str
    amount: str
    currency: str
    fee: str
    organisation_id: uuid.UUID
    created_at: datetime


class ApiKeyIn(StrictModel):
    """A new API key: a name to recognise it by, and what it may do."""

    name: Text(100)  # type: ignore[valid-type]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=6)]


class ApiKeyOut(BaseModel):
    """An API key as listed: never its secret."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    revoked: bool


class IssuedApiKeyOut(ApiKeyOut):
    """A key just created: ``key`` is shown this once and cannot be shown again."""

    key: str


class AllowlistEntryIn(StrictModel):
    """A network (CIDR, e.g. ``203.0.113.0/24``; a bare address is one host) to allow."""

    cidr: Text(64)  # type: ignore[valid-type]
    label: Text(100) | None = None  # type: ignore[valid-type]


class AllowlistEntryOut(BaseModel):
    """One network on the allow-list."""

    id: uuid.UUID
    cidr: str
    label: str | None
    created_at: datetime


class AllowlistOut(BaseModel):
    """The organisation's allow-list; ``loopback_allowed`` when loopback is allowed besides
    (development and test), and the address this request came from."""

    entries: list[AllowlistEntryOut]
    loopback_allowed: bool
    your_ip: str


class PayoutRowOut(BaseModel):
    """One CSV row: ``ok`` (or ``completed``) or ``invalid`` with the reason."""

    line: int
    recipient_email: str
    amount: str
    currency: str
    note: str | None
    status: Literal["ok", "invalid", "completed"]
    error_code: str | None
    error_message: str | None
    transaction_id: uuid.UUID | None


class PayoutBatchOut(BaseModel):
    """A payout batch: ``invalid`` batches cannot be executed (upload a corrected file),
    ``validated`` ones can, ``completed`` ones were paid — every row, once."""

    id: uuid.UUID
    status: Literal["invalid", "validated", "completed"]
    currency: str
    total: str
    row_count: int
    invalid_count: int
    treasury_available: str | None = None
    duplicate_of: uuid.UUID | None = Field(
        default=None,
        description="An earlier batch of this organisation made from the very same file",
    )
    filename: str | None
    created_at: datetime
    executed_at: datetime | None
    rows: list[PayoutRowOut] | None = None


class MovementOut(BaseModel):
    """One movement on the treasury: a posting of a ledger entry, unsigned with a direction."""

    created_at: datetime
    entry_id: int
    type: str
    direction: Literal["credit", "debit"]
    amount: str
    currency: str
    balance_after: str
    counterparty_email: str | None
    note: str | None
    reference: str | None


class MovementPageOut(BaseModel):
    """A page of the treasury's movements, newest first; ``next_cursor`` fetches the next."""

    items: list[MovementOut]
    next_cursor: str | None


class AuditEntryOut(BaseModel):
    """One audit row about the organisation."""

    id: int
    created_at: datetime
    actor_id: uuid.UUID | None
    actor_email: str | None
    actor_role: str | None
    action: str
    outcome: str
    ip: str | None
    request_id: str | None
    details: dict[str, object]


class AuditPageOut(BaseModel):
    """A page of the audit log, newest first; ``next_before`` fetches the next page."""

    items: list[AuditEntryOut]
    next_before: int | None


# --- the treasury's DeFi ---------------------------------------------------------------------


class TreasuryInvestIn(StrictModel):
    """Invest ``amount`` USD of the treasury into a strategy (amount + fee + gas are held from
    the treasury). A strategy riskier than the organisation's risk profile needs
    ``acknowledge_risk: true``."""

    strategy_id: StrategyId
    amount: DefiAmount
    acknowledge_risk: bool = False


class TreasuryDefiOut(BaseModel):
    """The treasury's live DeFi positions in USD (each rounded to the cent, then summed):
    their value at the vault's share price now, the principal still in, and the yield
    accrued on the open ones (value over principal; booked in the ledger's ``defi`` domain by
    the periodic accrual, so ``domains.defi`` follows it)."""

    value_usd: str
    principal_usd: str
    accrued_yield_usd: str
    live_positions: int


class TreasuryOut(BalancesOut):
    """The treasury's balances by domain and asset (as ``/api/v1/balances``), and ``defi``:
    its DeFi positions valued now (always now, also with ``as_of``)."""

    defi: TreasuryDefiOut


class TreasuryPositionsOut(BaseModel):
    """The treasury's DeFi positions, newest first, valued now; ``totals`` over the live
    ones."""

    items: list[PositionOut]
    total_value_usd: str
    totals: TreasuryDefiOut
