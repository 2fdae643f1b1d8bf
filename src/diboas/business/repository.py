"""The business package's SQL: organisations, members, API keys and IP allow-lists. Payout
batches are in ``payouts_repository``; the reads behind exports and the organisation's audit
log in ``reports_repository``."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Organisation:
    """An organisation as stored."""

    id: uuid.UUID
    name: str
    created_by: uuid.UUID
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Membership:
    """An organisation with the role one user has in it."""

    organisation: Organisation
    role: str


@dataclass(frozen=True, slots=True)
class Member:
    """A member of an organisation."""

    user_id: uuid.UUID
    email: str
    full_name: str
    role: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AccessRow:
    """What an org-scoped request needs to decide: the organisation, the caller's role in it
    (None for a non-member) and its IP allow-list."""

    organisation: Organisation
    role: str | None
    allowlist: tuple[IpNetwork, ...]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored (its secret only as a hash)."""

    id: uuid.UUID
    organisation_id: uuid.UUID
    name: str
    prefix: str
    secret_hash: bytes
    scopes: tuple[str, ...]
    created_by: uuid.UUID
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class AllowlistEntry:
    """One network on an organisation's IP allow-list."""

    id: uuid.UUID
    cidr: IpNetwork
    label: str | None
    created_at: datetime


_ORG_COLUMNS = "o.id, o.name, o.created_by, o.created_at"


def _organisation(row: Any) -> Organisation:
    return Organisation(row.id, row.name, row.created_by, row.created_at)


# --- organisations and members ---------------------------------------------------------------


async def insert_organisation(
    session: AsyncSession, organisation_id: uuid.UUID, name: str, created_by: uuid.UUID
) -> Organisation:
    row = (
        await session.execute(
            text("""INSERT INTO organisations (id, name, created_by) VALUES (:id, :name, :by)
                    RETURNING id, name, created_by, created_at"""),
            {"id": organisation_id, "name": name, "by": created_by},
        )
    ).one()
    return _organisation(row)


async def lock_organisation(session: AsyncSession, organisation_id: uuid.UUID) -> None:
    """Serialise membership changes of one organisation (the last-admin rule is checked
    under this lock)."""
    await session.execute(
        text("SELECT 1 FROM organisations WHERE id = :id FOR UPDATE"), {"id": organisation_id}
    )


async def memberships(session: AsyncSession, user_id: uuid.UUID) -> list[Membership]:
    rows = await session.execute(
        text(f"""SELECT {_ORG_COLUMNS}, m.role FROM organisation_members m
                   JOIN organisations o ON o.id = m.organisation_id
                  WHERE m.user_id = :user ORDER BY o.created_at, o.id"""),
        {"user": user_id},
    )
    return [Membership(_organisation(r), r.role) for r in rows]


async def access(
    session: AsyncSession, organisation_id: uuid.UUID, user_id: uuid.UUID | None
) -> AccessRow | None:
    """The organisation, the user's role in it and its allow-list, in one statement."""
    row = (
        await session.execute(
            text(f"""
                SELECT {_ORG_COLUMNS},
                       (SELECT role FROM organisation_members
                         WHERE organisation_id = o.id AND user_id = :user) AS role,
                       ARRAY(SELECT host(cidr) || '/' || masklen(cidr)
                               FROM organisation_ip_allowlist WHERE organisation_id = o.id)
                           AS allowlist
                  FROM organisations o WHERE o.id = :org
            """),
            {"org": organisation_id, "user": user_id},
        )
    ).one_or_none()
    if row is None:
        return None
    networks = tuple(ipaddress.ip_network(cidr) for cidr in row.allowlist)
    return AccessRow(_organisation(row), row.role, networks)


async def members(session: AsyncSession, organisation_id: uuid.UUID) -> list[Member]:
    rows = await session.execute(
        text("""SELECT m.user_id, u.email, u.full_name, m.role, m.created_at
                  FROM organisation_members m JOIN users u ON u.id = m.user_id
                 WHERE m.organisation_id = :org ORDER BY m.created_at, u.email"""),
        {"org": organisation_id},
    )
    return [Member(**r._mapping) for r in rows]


async def member_role(
    session: AsyncSession, organisation_id: uuid.UUID, user_id: uuid.UUID
) -> str | None:
    return (
        await session.execute(
            text("""SELECT role FROM organisation_members
                     WHERE organisation_id = :org AND user_id = :user"""),
            {"org": organisation_id, "user": user_id},
        )
    ).scalar_one_or_none()


async def admin_count(session: AsyncSession, organisation_id: uuid.UUID) -> int:
    return int(
        (
            await session.execute(
                text("""SELECT count(*) FROM organisation_members
                         WHERE organisation_id = :org AND role = 'admin'"""),
                {"org": organisation_id},
            )
        ).scalar_one()
    )


async def insert_member(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    added_by: uuid.UUID | None,
) -> bool:
    """Add a member; False when the user is in the organisation already."""
    result = await session.execute(
        text("""INSERT INTO organisation_members (organisation_id, user_id, role, added_by)
                VALUES (:org, :user, :role, :by) ON CONFLICT DO NOTHING"""),
        {"org": organisation_id, "user": user_id, "role": role, "by": added_by},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def set_member_role(
    session: AsyncSession, organisation_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> None:
    await session.execute(
        text("""UPDATE organisation_members SET role = :role, updated_at = now()
                 WHERE organisation_id = :org AND user_id = :user"""),
        {"org": organisation_id, "user": user_id, "role": role},
    )


async def delete_member(
    session: AsyncSession, organisation_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await session.execute(
        text("DELETE FROM organisation_members WHERE organisation_id = :org AND user_id = :user"),
        {"org": organisation_id, "user": user_id},
    )


# --- API keys ----------------------------------------------------------------------------------

_KEY_COLUMNS = """id, organisation_id, name, prefix, secret_hash, scopes, created_by, created_at,
                  last_used_at, revoked_at"""


def _api_key(row: Any) -> ApiKey:
    values = dict(row._mapping)
    values["secret_hash"] = bytes(values["secret_hash"])
    values["scopes"] = tuple(values["scopes"])
    return ApiKey(**values)


async def insert_api_key(
    session: AsyncSession,
    *,
    key_id: uuid.UUID,
    organisation_id: uuid.UUID,
    name: str,
    prefix: str,
    secret_hash: bytes,
    scopes: Sequence[str],
    created_by: uuid.UUID,
) -> ApiKey:
    row = (
        await session.execute(
            text(f"""INSERT INTO business_api_keys
                        (id, organisation_id, name, prefix, secret_hash, scopes, created_by)
                     VALUES (:id, :org, :name, :prefix, :hash, :scopes, :by)
                     RETURNING {_KEY_COLUMNS}"""),
            {
                "id": key_id,
                "org": organisation_id,
                "name": name,
                "prefix": prefix,
                "hash": secret_hash,
                "scopes": list(scopes),
                "by": created_by,
            },
        )
    ).one()
    return _api_key(row)


async def api_key_by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    row = (
        await session.execute(
            text(f"SELECT {_KEY_COLUMNS} FROM business_api_keys WHERE prefix = :prefix"),
            {"prefix": prefix},
        )
    ).one_or_none()
    return None if row is None else _api_key(row)


async def api_keys(session: AsyncSession, organisation_id: uuid.UUID) -> list[ApiKey]:
    rows = await session.execute(
        text(f"""SELECT {_KEY_COLUMNS} FROM business_api_keys
                  WHERE organisation_id = :org ORDER BY created_at, id"""),
        {"org": organisation_id},
    )
    return [_api_key(r) for r in rows]


async def revoke_api_key(
    session: AsyncSession, organisation_id: uuid.UUID, key_id: uuid.UUID, revoked_by: uuid.UUID
) -> ApiKey | None:
    """Revoke a key of the organisation (a revoked key stays revoked, at its first time)."""
    row = (
        await session.execute(
            text(f"""UPDATE business_api_keys
                        SET revoked_at = coalesce(revoked_at, now()),
                            revoked_by = coalesce(revoked_by, :by)
                      WHERE id = :id AND organisation_id = :org
                  RETURNING {_KEY_COLUMNS}"""),
            {"id": key_id, "org": organisation_id, "by": revoked_by},
        )
    ).one_or_none()
    return None if row is None else _api_key(row)


async def touch_api_key(session: AsyncSession, key_id: uuid.UUID) -> None:
    # At most one write a minute per key: "last used" needs no finer grain, and a busy key
    # must not turn every read into a row update.
    await session.execute(
        text("""UPDATE business_api_keys SET last_used_at = now()
                 WHERE id = :id AND (last_used_at IS NULL
                                     OR last_used_at < now() - interval '1 minute')"""),
        {"id": key_id},
    )


# --- IP allow-list -----------------------------------------------------------------------------


def _entry(row: Any) -> AllowlistEntry:
    return AllowlistEntry(row.id, ipaddress.ip_network(row.cidr), row.label, row.created_at)


_ENTRY_COLUMNS = "id, host(cidr) || '/' || masklen(cidr) AS cidr, label, created_at"


async def allowlist(session: AsyncSession, organisation_id: uuid.UUID) -> list[AllowlistEntry]:
    rows = await session.execute(
        text(f"""SELECT {_ENTRY_COLUMNS} FROM organisation_ip_allowlist
                  WHERE organisation_id = :org ORDER BY created_at, id"""),
        {"org": organisation_id},
    )
    return [_entry(r) for r in rows]


async def insert_allowlist_entry(
    session: AsyncSession,
    *,
    entry_id: uuid.UUID,
    organisation_id: uuid.UUID,
    network: IpNetwork,
    label: str | None,
    created_by: uuid.UUID | None,
) -> AllowlistEntry | None:
    """Add a network; None when it is on the list already."""
    row = (
        await session.execute(
            text(f"""INSERT INTO organisation_ip_allowlist (id, organisation_id, cidr, label,
                                                           created_by)
                     VALUES (:id, :org, CAST(:cidr AS cidr), :label, :by)
                     ON CONFLICT (organisation_id, cidr) DO NOTHING
                     RETURNING {_ENTRY_COLUMNS}"""),
            {
                "id": entry_id,
                "org": organisation_id,
                "cidr": str(network),
                "label": label,
                "by": created_by,
            },
        )
    ).one_or_none()
    return None if row is None else _entry(row)


async def delete_allowlist_entry(
    session: AsyncSession, organisation_id: uuid.UUID, entry_id: uuid.UUID
) -> AllowlistEntry | None:
    row = (
        await session.execute(
            text(f"""DELETE FROM organisation_ip_allowlist WHERE id = :id AND organisation_id = :org
                     RETURNING {_ENTRY_COLUMNS}"""),
            {"id": entry_id, "org": organisation_id},
        )
    ).one_or_none()
    return None if row is None else _entry(row)
