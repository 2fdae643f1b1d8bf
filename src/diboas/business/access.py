"""Who may act on an organisation: a member signed in with a token (by their role in it) or
one of its API keys (by exactly the key's scopes), and only from its IP allow-list.

Each org-scoped route declares one ``Action`` through ``org_access``; the dependency carries
the permission ``business:access`` so the app-wide route walk sees it (deny by default).
Order of checks: credentials (401) → the organisation is the caller's (else 404, as for an
organisation that does not exist) → the client's address is allowed (403 ``ip_not_allowed``)
→ the role or scope suffices (403).
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.business import repository
from diboas.business.errors import (
    ApiKeyNotAcceptedError,
    IpNotAllowedError,
    OrganisationNotFoundError,
    OrganisationRoleError,
    ScopeError,
)
from diboas.business.repository import AccessRow, ApiKey, IpNetwork, Organisation
from diboas.business.service import api_keys
from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.identity.dependencies import (
    PERMISSION_ATTRIBUTE,
    ForbiddenError,
    UnauthorizedError,
    authenticate,
)
from diboas.identity.repository import User
from diboas.identity.roles import has_permission
from diboas.settings import Settings

PERMISSION = "business:access"
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BusinessBearer",
    description="An access token from /api/v1/auth/login, or an organisation API key (dbk_…)",
)


class OrgRole(StrEnum):
    """A member's role in an organisation."""

    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


_RANK = {OrgRole.VIEWER: 0, OrgRole.MEMBER: 1, OrgRole.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Action:
    """What a route needs: the least org role for people, the scope for API keys (None: no
    key may do it)."""

    min_role: OrgRole
    scope: str | None


# Every org-scoped action of the API (the routes name these; pages should too).
READ_ORGANISATION = Action(OrgRole.VIEWER, "organisation:read")
READ_TREASURY = Action(OrgRole.VIEWER, "treasury:read")
READ_TRANSACTIONS = Action(OrgRole.VIEWER, "transactions:read")
READ_PAYOUTS = Action(OrgRole.VIEWER, "payouts:read")
WRITE_PAYOUTS = Action(OrgRole.MEMBER, "payouts:write")
READ_AUDIT = Action(OrgRole.ADMIN, "audit:read")
MANAGE = Action(OrgRole.ADMIN, None)  # members, keys, allow-list, funding: people only
# The treasury's DeFi: reading its positions and risk profile is reading the treasury;
# investing treasury money, withdrawing it and setting the risk profile are for its admins in
# person (as funding is: no API key moves treasury money into a strategy).
READ_TREASURY_DEFI = Action(OrgRole.VIEWER, "treasury:read")
INVEST_TREASURY = Action(OrgRole.ADMIN, None)
LEAVE = Action(OrgRole.VIEWER, None)  # any member may leave (a key is no member)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of an org-scoped request: a member, or one of the organisation's keys."""

    organisation: Organisation
    client_ip: str
    user: User | None = None
    role: OrgRole | None = None
    api_key: ApiKey | None = None

    @property
    def organisation_id(self) -> uuid.UUID:
        return self.organisation.id

    def audit_context(self, request: Request) -> AuditContext:
        """Who acts, for the audit log: the member, or ``api_key`` (its id in the details)."""
        return AuditContext(
            actor_id=None if self.user is None else self.user.id,
            actor_role=f"org_{self.role}" if self.user is not None else "api_key",
            ip=self.client_ip,
            request_id=getattr(request.state, "request_id", None),
        )

    @property
    def idempotency_scope(self) -> str:
        """Whose Idempotency-Keys these are: the person's (as in banking) or the key's."""
        if self.api_key is not None:
            return f"api_key:{self.api_key.id}"
        return f"user:{None if self.user is None else self.user.id}"

    def actor_details(self) -> dict[str, str]:
        """Names the API key that acted (people are named by the audit row's actor)."""
        if self.api_key is None:
            return {}
        return {"api_key_id": str(self.api_key.id), "api_key_prefix": self.api_key.prefix}


# --- client address ---------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _address(value: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(request: Request, settings: Settings) -> IpAddress | None:
    """The client's address: the connection's, or — when the connection comes from a trusted
    proxy — the right-most address of ``X-Forwarded-For`` that is not a trusted proxy itself
    (everything left of it could have been written by the client)."""
    peer = _address(request.client.host) if request.client else None
    trusted = _networks(tuple(settings.business_trusted_proxies))
    if peer is None or not any(peer in network for network in trusted):
        return peer
    hops = [h for part in request.headers.getlist("x-forwarded-for") for h in part.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return None  # a garbled chain: the client cannot be told
        if not any(address in network for network in trusted):
            return address
    return peer


def loopback_allowed(settings: Settings) -> bool:
    """Loopback is on every allow-list in development and test unless set otherwise."""
    if settings.business_allow_loopback is not None:
        return settings.business_allow_loopback
    return settings.env != "production"


def is_allowed(
    address: IpAddress | None, allowlist: tuple[IpNetwork, ...], settings: Settings
) -> bool:
    """True when ``address`` is on the allow-list (an empty list allows no one); loopback is
    allowed exactly when ``loopback_allowed``."""
    if address is None:
        return False
    if address.is_loopback:
        # Decided by the setting alone, whatever the list holds: in production a loopback
        # peer is most likely a local proxy not configured as trusted, and letting the list
        # admit it would admit everyone behind that proxy.
        return loopback_allowed(settings)
    return any(address.version == n.version and address in n for n in allowlist)


# --- the dependency ----------------------------------------------------------------------------


def role_allows(role: OrgRole, action: Action) -> bool:
    """True when a member with ``role`` may do ``action`` (pages show only what is allowed)."""
    return _RANK[role] >= _RANK[action.min_role]


def _authorised_role(found: AccessRow, action: Action) -> OrgRole:
    role = OrgRole(found.role) if found.role is not None else None
    if role is None:
        raise OrganisationNotFoundError("no such organisation")
    if not role_allows(role, action):
        raise OrganisationRoleError(
            f"this needs the {action.min_role.value!r} role in the organisation",
            details={"role": role.value, "required": action.min_role.value},
        )
    return role


async def _check_ip(
    request: Request,
    db: DatabaseDep,
    found: AccessRow,
    *,
    user: User | None = None,
    key: ApiKey | None = None,
) -> str:
    """The allowed client address, or 403 — the refusal audited in its own transaction
    (valid credentials used from elsewhere are worth an admin's attention)."""
    address = client_address(request, db.settings)
    if is_allowed(address, found.allowlist, db.settings):
        return str(address)
    shown = None if address is None else str(address)
    context = AuditContext(
        actor_id=None if user is None else user.id,
        actor_role="api_key" if key is not None else None if user is None else user.role,
        ip=shown,
        request_id=getattr(request.state, "request_id", None),
    )
    await audit.record_separately(
        db.sessions,
        context,
        "business.ip_refused",
        outcome="refused",
        subject_type="organisation",
        subject_id=found.organisation.id,
        details={
            "ip": shown,
            "method": request.method,
            "path": request.url.path,
            **({} if key is None else {"api_key_id": str(key.id), "api_key_prefix": key.prefix}),
        },
    )
    raise IpNotAllowedError(
        "requests from this address are not on the organisation's IP allow-list",
        details={"ip": shown},
    )


def org_access(action: Action) -> Any:
    """A route dependency: the ``Principal`` allowed to do ``action`` on the organisation in
    the path (``organisation_id``)."""

    async def check(
        request: Request,
        organisation_id: uuid.UUID,
        settings: SettingsDep,
        db: DatabaseDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise UnauthorizedError("sign in or present an API key to continue")
        if credentials.credentials.startswith(api_keys.KEY_MARK):
            return await _with_key(request, db, organisation_id, credentials, action)
        caller = await authenticate(request, settings, db, credentials)
        return await authorise_member(request, db, organisation_id, caller.user, action)

    setattr(check, PERMISSION_ATTRIBUTE, PERMISSION)
    return Depends(check)


async def authorise_member(
    request: Request, db: DatabaseDep, organisation_id: uuid.UUID, user: User, action: Action
) -> Principal:
    """The ``Principal`` of a signed-in ``user`` allowed to do ``action`` on the organisation,
    or the refusal (404 not a member, 403 address, role or permission). The API's dependency
    uses it after checking the token; server-rendered pages can call it with the user of their
    own session, so both apply the very same rules."""
    if not has_permission(user.role, PERMISSION):
        raise ForbiddenError(f"this needs the {PERMISSION!r} permission")
    found = await db.read_one(lambda s: repository.access(s, organisation_id, user.id))
    if found is None or found.role is None:
        raise OrganisationNotFoundError("no such organisation")
    ip = await _check_ip(request, db, found, user=user)
    role = _authorised_role(found, action)
    return Principal(found.organisation, ip, user=user, role=role)


async def _with_key(
    request: Request,
    db: DatabaseDep,
    organisation_id: uuid.UUID,
    credentials: HTTPAuthorizationCredentials,
    action: Action,
) -> Principal:
    key = await db.read_one(lambda s: api_keys.verify(s, credentials.credentials))
    if key.organisation_id != organisation_id:
        raise OrganisationNotFoundError("no such organisation")
    found = await db.read_one(lambda s: repository.access(s, organisation_id, None))
    if found is None:
        raise OrganisationNotFoundError("no such organisation")
    ip = await _check_ip(request, db, found, key=key)
    if action.scope is None:
        raise ApiKeyNotAcceptedError("this needs a signed-in organisation admin, not an API key")
    if action.scope not in key.scopes:
        raise ScopeError(
            f"this API key lacks the {action.scope!r} scope",
            details={"required": action.scope, "scopes": list(key.scopes)},
        )
    await db.read_one(lambda s: repository.touch_api_key(s, key.id))
    structlog.contextvars.bind_contextvars(api_key_id=str(key.id))
    return Principal(found.organisation, ip, api_key=key)
