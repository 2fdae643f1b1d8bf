"""The ledger accounts DeFi posts to, and the system's audit context.

- a user's ``defi`` account in the strategy's asset (USDC): the booked value of their
  positions (principal, then marked to the vault's share price by ``valuation``);
- the platform's external accounts: USD leaving to buy the stablecoin and coming back,
  the stablecoin arriving from and returning to the vault;
- the platform's DeFi gas account (platform, domain defi, USD, clearing): gas charged to
  users, owed to the omnibus wallet that paid it in ether;
- a sharded platform fee account for the platform fee.
"""

from __future__ import annotations

import random
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance.audit import AuditContext
from diboas.fees.service import FEE_SHARDS
from diboas.ledger import service as ledger
from diboas.ledger.models import PLATFORM_OWNER_ID, Account, AccountKind, Domain, OwnerType

SYSTEM = AuditContext(actor_role="system")


async def defi_account(session: AsyncSession, user_id: uuid.UUID, asset: str) -> Account:
    """The user's DeFi account in ``asset`` (opened on first use)."""
    return await ledger.customer_account(
        session, owner_type=OwnerType.USER, owner_id=user_id, domain=Domain.DEFI, asset=asset
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
