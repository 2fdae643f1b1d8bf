"""The ledger accounts DeFi posts to, and where its audit rows go.

- the owner's ``defi`` account in the strategy's asset (USDC): the booked value of their
  positions (principal, then marked to the vault's share price by ``valuation``) — a user's,
  or an organisation's (``OwnerType.ORGANISATION``) for its treasury's positions;
- the owner's banking account in USD: what an investment is held from and a withdrawal paid
  into (an organisation's is its treasury);
- the platform's external accounts: USD leaving to buy the stablecoin and coming back,
  the stablecoin arriving from and returning to the vault;
- the platform's DeFi gas account (platform, domain defi, USD, clearing): gas charged to
  users, owed to the omnibus wallet that paid it in ether;
- a sharded platform fee account for the platform fee.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.defi.owners import Owner
from diboas.fees.service import FEE_SHARDS
from diboas.ledger import service as ledger
from diboas.ledger.models import PLATFORM_OWNER_ID, Account, AccountKind, Domain, OwnerType

SYSTEM = AuditContext(actor_role="system")


async def defi_account(session: AsyncSession, owner: Owner, asset: str) -> Account:
    """The owner's DeFi account in ``asset`` (opened on first use)."""
    return await ledger.customer_account(
        session, owner_type=owner.type, owner_id=owner.id, domain=Domain.DEFI, asset=asset
    )


async def cash_account(session: AsyncSession, owner: Owner, currency: str) -> Account:
    """The owner's available banking account in ``currency``: a user's balance, or an
    organisation's treasury (the account ``business`` funds and pays out from)."""
    return await ledger.customer_account(
        session, owner_type=owner.type, owner_id=owner.id, domain=Domain.BANKING, asset=currency
    )


# What an organisation's DeFi events are called in its audit log (beside the other
# ``business.*`` actions). A user's keep their ``defi.*`` names, about the transaction.
_ORGANISATION_ACTIONS = {
    "defi.deposit": "business.treasury_defi_invested",
    "defi.risk_acknowledged": "business.treasury_defi_risk_acknowledged",
    "defi.deposit.completed": "business.treasury_defi_invest_completed",
    "defi.deposit.failed": "business.treasury_defi_invest_failed",
    "defi.withdraw": "business.treasury_defi_withdrawal_requested",
    "defi.withdraw.completed": "business.treasury_defi_withdrawal_completed",
    "defi.withdraw.failed": "business.treasury_defi_withdrawal_failed",
}


async def record(
    session: AsyncSession,
    context: AuditContext,
    owner: Owner,
    action: str,
    transaction_id: uuid.UUID,
    *,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
) -> None:
    """Audit a DeFi event of ``owner``'s: a user's about its transaction; an organisation's
    about the organisation (so it is in the organisation's audit log), naming the
    transaction."""
    if owner.is_organisation:
        await audit.record(
            session,
            context,
            _ORGANISATION_ACTIONS[action],
            outcome=outcome,
            subject_type="organisation",
            subject_id=owner.id,
            details={"transaction_id": str(transaction_id), **(details or {})},
        )
        return
    await audit.record(
        session,
        context,
        action,
        outcome=outcome,
        subject_type="transaction",
        subject_id=transaction_id,
        details=details,
    )


async def external(session: AsyncSession, asset: str) -> Account:
    """The platform's account for money outside the ledger, in ``asset``."""
    return await ledger.platform_account(session, asset=asset, kind=AccountKind.EXTERNAL)


async def gas_account(session: AsyncSession) -> Account:
    """Where gas charged to users goes (USD, platform, domain defi)."""
    return await ledger.open_account(
        session,
        owner_type=OwnerType.PLATFORM,
        owner_id=PLATFORM_OWNER_ID,
        domain=Domain.DEFI,
        asset="USD",
        kind=AccountKind.CLEARING,
    )


async def fee_revenue(session: AsyncSession) -> Account:
    """One shard of the platform's USD fee account (hot row split, summed on read)."""
    shard = random.randrange(FEE_SHARDS)  # noqa: S311 - load spreading, not security
    return await ledger.platform_account(session, asset="USD", kind=AccountKind.FEES, shard=shard)


async def clearing(session: AsyncSession) -> Account:
    """The platform's USD clearing account (a provider's share of a fee, owed to it)."""
    return await ledger.platform_account(session, asset="USD", kind=AccountKind.CLEARING)
