"""Organisations and their members, and the treasury's funding.

The last-admin rule: membership changes lock the organisation's row first, then count its
admins, so two concurrent demotions cannot both pass; a deferred trigger
(``business_keep_an_admin``) refuses the same thing at commit, even for raw SQL.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository as banking
from diboas.banking.repository import NewTransaction, Transaction
from diboas.banking.service import reversals
from diboas.banking.service.common import banking_account, lock_user, parse_usd
from diboas.business import repository
from diboas.business.access import OrgRole, Principal
from diboas.business.errors import (
    AlreadyMemberError,
    LastAdminError,
    MemberNotFoundError,
    UserNotFoundError,
)
from diboas.business.repository import IpNetwork, Member, Membership, Organisation
from diboas.business.schemas import FundingIn
from diboas.compliance import audit, limits
from diboas.compliance.audit import AuditContext
from diboas.identity import repository as users
from diboas.kit.ids import uuid7
from diboas.ledger import service as ledger
from diboas.ledger.models import Account, Domain, OwnerType
from diboas.settings import Settings


async def treasury_account(
    session: AsyncSession, organisation_id: uuid.UUID, currency: str
) -> Account:
    """The organisation's available banking account in ``currency`` (opened on first use)."""
    return await ledger.customer_account(
        session,
        owner_type=OwnerType.ORGANISATION,
        owner_id=organisation_id,
        domain=Domain.BANKING,
        asset=currency,
    )


async def _record(
    session: AsyncSession,
    context: AuditContext,
    organisation_id: uuid.UUID,
    action: str,
    **details: object,
) -> None:
    await audit.record(
        session,
        context,
        action,
        subject_type="organisation",
        subject_id=organisation_id,
        details=details,
    )


async def create(
    session: AsyncSession,
    *,
    name: str,
    creator_id: uuid.UUID,
    creator_network: IpNetwork | None,
    context: AuditContext,
) -> Organisation:
    """Create an organisation: its creator is its first admin, and the address they create it
    from is its first allow-list entry (so the list starts closed to everyone else)."""
    organisation = await repository.insert_organisation(session, uuid.uuid4(), name, creator_id)
    await repository.insert_member(session, organisation.id, creator_id, OrgRole.ADMIN, None)
    if creator_network is not None:
        await repository.insert_allowlist_entry(
            session,
            entry_id=uuid.uuid4(),
            organisation_id=organisation.id,
            network=creator_network,
            label="added when the organisation was created",
            created_by=creator_id,
        )
    await _record(
        session,
        context,
        organisation.id,
        "business.organisation_created",
        name=name,
        allowlist=[] if creator_network is None else [str(creator_network)],
    )
    return organisation


async def mine(session: AsyncSession, user_id: uuid.UUID) -> list[Membership]:
    """The organisations the user belongs to, with their role in each."""
    return await repository.memberships(session, user_id)


async def members(session: AsyncSession, organisation_id: uuid.UUID) -> list[Member]:
    """The organisation's members."""
    return await repository.members(session, organisation_id)


async def _member(session: AsyncSession, organisation_id: uuid.UUID, user_id: uuid.UUID) -> Member:
    for member in await repository.members(session, organisation_id):
        if member.user_id == user_id:
            return member
    raise MemberNotFoundError("no such member", details={"user_id": str(user_id)})


async def add_member(
    session: AsyncSession,
    principal: Principal,
    *,
    email: str,
    role: OrgRole,
    context: AuditContext,
) -> Member:
    """Add an existing diBoaS user to the organisation with ``role``."""
    user = await users.find_by_email(session, email)
    if user is None or user.status != "active":
        raise UserNotFoundError("no diBoaS user has this email address")
    added_by = None if principal.user is None else principal.user.id
    if not await repository.insert_member(
        session, principal.organisation_id, user.id, role, added_by
    ):
        raise AlreadyMemberError("this user is a member already", details={"user_id": str(user.id)})
    await _record(
        session,
        context,
        principal.organisation_id,
        "business.member_added",
        user_id=str(user.id),
        email=user.email,
        role=role.value,
    )
    return await _member(session, principal.organisation_id, user.id)


async def _admin_guard(
    session: AsyncSession, organisation_id: uuid.UUID, user_id: uuid.UUID
) -> str:
    await repository.lock_organisation(session, organisation_id)
    current = await repository.member_role(session, organisation_id, user_id)
    if current is None:
        raise MemberNotFoundError("no such member", details={"user_id": str(user_id)})
    return current


async def change_role(
    session: AsyncSession,
    principal: Principal,
    *,
    user_id: uuid.UUID,
    role: OrgRole,
    context: AuditContext,
) -> Member:
    """Change a member's role; the last admin cannot be demoted."""
    organisation_id = principal.organisation_id
    current = await _admin_guard(session, organisation_id, user_id)
    demoted = current == OrgRole.ADMIN and role != OrgRole.ADMIN
    if demoted and await repository.admin_count(session, organisation_id) <= 1:
        raise LastAdminError("the organisation needs at least one admin")
    if current != role:
        await repository.set_member_role(session, organisation_id, user_id, role)
        await _record(
            session,
            context,
            organisation_id,
            "business.member_role_changed",
            user_id=str(user_id),
            old_role=current,
            new_role=role.value,
        )
    return await _member(session, organisation_id, user_id)


async def remove_member(
    session: AsyncSession, principal: Principal, *, user_id: uuid.UUID, context: AuditContext
) -> None:
    """Remove a member; never the last admin."""
    organisation_id = principal.organisation_id
    current = await _admin_guard(session, organisation_id, user_id)
    if current == OrgRole.ADMIN and await repository.admin_count(session, organisation_id) <= 1:
        raise LastAdminError("the organisation needs at least one admin")
    await repository.delete_member(session, organisation_id, user_id)
    await _record(
        session,
        context,
        organisation_id,
        "business.member_removed",
        user_id=str(user_id),
        role=current,
    )


async def fund(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    *,
    request: FundingIn,
    context: AuditContext,
) -> Transaction:
    """Move money from the admin's own banking balance into the treasury: one ledger entry and
    the admin's ``transfer_out`` transaction (it counts against their transfer limits)."""
    if principal.user is None:  # funding is never delegated to an API key
        raise RuntimeError("funding needs a signed-in admin")
    currency, amount = parse_usd(request.currency, request.amount)
    admin = await lock_user(session, principal.user.id)
    await reversals.ensure_not_frozen(session, admin.id, currency)
    await limits.enforce(session, settings, admin, "transfer", amount)
    transaction_id = uuid7()
    source = await banking_account(session, admin.id, currency)
    treasury = await treasury_account(session, principal.organisation_id, currency)
    note = request.note or f"Funding of {principal.organisation.name}"
    await ledger.post_entry(
        session,
        kind="business.funding",
        postings=[(source, -amount), (treasury, amount)],
        reference=f"txn:{transaction_id}",
        metadata={
            "transaction_ids": [str(transaction_id)],
            "organisation_id": str(principal.organisation_id),
            "counterparty_user_id": str(admin.id),
            "note": note,
        },
    )
    await banking.insert_transactions(
        session,
        [
            NewTransaction(
                id=transaction_id,
                user_id=admin.id,
                type="transfer_out",
                status="completed",
                asset=currency,
                amount=amount,
                description=note,
                metadata={"organisation_id": str(principal.organisation_id), "business": "funding"},
            )
        ],
    )
    await _record(
        session,
        context,
        principal.organisation_id,
        "business.treasury_funded",
        transaction_id=str(transaction_id),
        amount=str(amount),
        currency=currency,
    )
    (transaction,) = await banking.get_transactions(session, [transaction_id])
    return transaction
