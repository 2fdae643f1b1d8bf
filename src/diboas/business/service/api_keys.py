"""Organisation API keys: ``dbk_<prefix>_<secret>``, shown once, kept only as a hash.

The prefix (12 hex characters, public) finds the row in one index probe; the stored hash is
SHA-256 of ``prefix.secret`` (domain-separated), compared in constant time. The secret is 256
random bits, so a database leak yields no usable key: the hash can be neither reversed nor
brute-forced. No server key is involved on purpose — rotating ``DIBOAS_SECRET_KEY`` leaves
every API key working (an earlier HMAC under that key made a rotation revoke them all).
"""

from __future__ import annotations

import hmac
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256

from sqlalchemy.ext.asyncio import AsyncSession

from diboas.business import repository
from diboas.business.errors import ApiKeyNotFoundError, InvalidApiKeyError
from diboas.business.repository import ApiKey
from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.kit.errors import InvalidRequestError

KEY_MARK = "dbk_"
# What an API key may be allowed to do. Managing members, keys, the allow-list and funding
# the treasury are never delegated to a key: they need a signed-in admin.
SCOPES = frozenset(
    {
        "organisation:read",
        "treasury:read",
        "transactions:read",
        "payouts:read",
        "payouts:write",
        "audit:read",
    }
)
_KEY_FORMAT = re.compile(r"dbk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", re.ASCII)


def key_hash(prefix: str, secret: str) -> bytes:
    """The stored form of a key: SHA-256 of ``prefix.secret``, under this purpose's label."""
    return sha256(f"diboas/business/api-key/v2\x00{prefix}.{secret}".encode()).digest()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: the row, and the full key text — returned once, never stored."""

    key: ApiKey
    plaintext: str


def check_scopes(scopes: Sequence[str]) -> list[str]:
    """The requested scopes, de-duplicated and sorted; unknown ones are refused."""
    unknown = sorted(set(scopes) - SCOPES)
    if unknown or not scopes:
        raise InvalidRequestError(
            "unknown or missing scopes", details={"unknown": unknown, "allowed": sorted(SCOPES)}
        )
    return sorted(set(scopes))


async def create(
    session: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    name: str,
    scopes: Sequence[str],
    created_by: uuid.UUID,
    context: AuditContext,
) -> IssuedKey:
    """Issue a scoped key for the organisation (audited without its secret)."""
    allowed = check_scopes(scopes)
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = await repository.insert_api_key(
        session,
        key_id=uuid.uuid4(),
        organisation_id=organisation_id,
        name=name,
        prefix=prefix,
        secret_hash=key_hash(prefix, secret),
        scopes=allowed,
        created_by=created_by,
    )
    await audit.record(
        session,
        context,
        "business.api_key_created",
        subject_type="organisation",
        subject_id=organisation_id,
        details={"api_key_id": str(key.id), "prefix": prefix, "name": name, "scopes": allowed},
    )
    return IssuedKey(key, f"{KEY_MARK}{prefix}_{secret}")


async def revoke(
    session: AsyncSession,
    *,
    organisation_id: uuid.UUID,
    key_id: uuid.UUID,
    revoked_by: uuid.UUID,
    context: AuditContext,
) -> ApiKey:
    """Revoke a key of the organisation; it is refused (401) from the next request on."""
    key = await repository.revoke_api_key(session, organisation_id, key_id, revoked_by)
    if key is None:
        raise ApiKeyNotFoundError("no such API key", details={"api_key_id": str(key_id)})
    await audit.record(
        session,
        context,
        "business.api_key_revoked",
        subject_type="organisation",
        subject_id=organisation_id,
        details={"api_key_id": str(key.id), "prefix": key.prefix},
    )
    return key


async def verify(session: AsyncSession, presented: str) -> ApiKey:
    """The live key ``presented`` is, or 401 (unknown, malformed, wrong secret, revoked)."""
    found = _KEY_FORMAT.fullmatch(presented)
    if found is None:
        raise InvalidApiKeyError("the API key is not valid")
    prefix, secret = found.groups()
    key = await repository.api_key_by_prefix(session, prefix)
    expected = key.secret_hash if key is not None else bytes(32)
    # Compared in constant time, and computed even for an unknown prefix.
    matches = hmac.compare_digest(key_hash(prefix, secret), expected)
    if key is None or not matches:
        raise InvalidApiKeyError("the API key is not valid")
    if key.revoked_at is not None:
        raise InvalidApiKeyError("the API key was revoked")
    return key


async def listed(session: AsyncSession, organisation_id: uuid.UUID) -> list[ApiKey]:
    """The organisation's keys, revoked ones included (never their secrets)."""
    return await repository.api_keys(session, organisation_id)
