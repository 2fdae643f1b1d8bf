"""Factories for ledger tests: accounts with money in them. They flush, never commit."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.ledger import service
from diboas.ledger.models import Account, AccountKind, Domain, OwnerType


async def user_account(
    session: AsyncSession,
    *,
    asset: str = "USD",
    domain: Domain = Domain.BANKING,
    funded: Decimal | str | None = None,
    owner_id: uuid.UUID | None = None,
) -> Account:
    """A new user's available account, funded from the platform's external account."""
    account = await service.customer_account(
        session,
        owner_type=OwnerType.USER,
        owner_id=owner_id or uuid.uuid4(),
        domain=domain,
        asset=asset,
    )
    if funded is not None and Decimal(funded) > 0:
        external = await service.platform_account(session, asset=asset, kind=AccountKind.EXTERNAL)
        await service.transfer(
            session, source=external, destination=account, amount=Decimal(funded), kind="deposit"
        )
    return account
