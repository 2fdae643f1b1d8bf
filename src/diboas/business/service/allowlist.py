"""An organisation's IP allow-list.

Default: the list starts with the address its creator created it from; an empty list allows
no one (loopback aside in development and test, ``DIBOAS_BUSINESS_ALLOW_LOOPBACK``). An admin
cannot make a change that would refuse the address they are making it from (a lock-out only
support could undo).
"""

from __future__ import annotations

import ipaddress
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.business import repository
from diboas.business.access import IpAddress, Principal, is_allowed, loopback_allowed
from diboas.business.errors import (
    AllowlistConflictError,
    AllowlistEntryNotFoundError,
    AllowlistLockoutError,
)
from diboas.business.repository import AllowlistEntry, IpNetwork
from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.kit.errors import InvalidRequestError
from diboas.settings import Settings


def parse_network(value: str) -> IpNetwork:
    """A CIDR (host bits must be zero) or a bare address (one host)."""
    try:
        return ipaddress.ip_network(value.strip(), strict=True)
    except ValueError as error:
        raise InvalidRequestError(
            "cidr must be a network such as 203.0.113.0/24 or 2001:db8::/32, with its host "
            "bits zero",
            details={"field": "cidr", "problem": str(error)},
        ) from None


def creator_network(address: IpAddress | None) -> IpNetwork | None:
    """The network seeded into a new organisation's list: the creator's own address — never
    loopback, which the list does not decide (``access.is_allowed``)."""
    if address is None or address.is_loopback:
        return None
    return ipaddress.ip_network(address)


def _check_not_loopback(network: IpNetwork, settings: Settings) -> None:
    if network.is_loopback and not loopback_allowed(settings):
        raise InvalidRequestError(
            "loopback cannot be allowed here: behind a local proxy, configure "
            "DIBOAS_BUSINESS_TRUSTED_PROXIES so the client's own address is seen",
            details={"field": "cidr"},
        )


async def entries(session: AsyncSession, organisation_id: uuid.UUID) -> list[AllowlistEntry]:
    """The organisation's allow-list."""
    return await repository.allowlist(session, organisation_id)


async def add(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    *,
    cidr: str,
    label: str | None,
    context: AuditContext,
) -> AllowlistEntry:
    """Allow one more network (never a loopback one where loopback is not allowed)."""
    network = parse_network(cidr)
    _check_not_loopback(network, settings)
    entry = await repository.insert_allowlist_entry(
        session,
        entry_id=uuid.uuid4(),
        organisation_id=principal.organisation_id,
        network=network,
        label=label,
        created_by=None if principal.user is None else principal.user.id,
    )
    if entry is None:
        raise AllowlistConflictError("this network is on the list already")
    await audit.record(
        session,
        context,
        "business.allowlist_added",
        subject_type="organisation",
        subject_id=principal.organisation_id,
        details={"cidr": str(network), "label": label},
    )
    return entry


async def remove(
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    *,
    entry_id: uuid.UUID,
    context: AuditContext,
) -> None:
    """Take a network off the list (refused when it would lock the caller out)."""
    await repository.lock_organisation(session, principal.organisation_id)
    removed = await repository.delete_allowlist_entry(session, principal.organisation_id, entry_id)
    if removed is None:
        raise AllowlistEntryNotFoundError("no such allow-list entry")
    remaining = tuple(
        e.cidr for e in await repository.allowlist(session, principal.organisation_id)
    )
    if not is_allowed(ipaddress.ip_address(principal.client_ip), remaining, settings):
        raise AllowlistLockoutError(
            "removing this network would refuse your own address",
            details={"your_ip": principal.client_ip, "cidr": str(removed.cidr)},
        )
    await audit.record(
        session,
        context,
        "business.allowlist_removed",
        subject_type="organisation",
        subject_id=principal.organisation_id,
        details={"cidr": str(removed.cidr), "label": removed.label},
    )
