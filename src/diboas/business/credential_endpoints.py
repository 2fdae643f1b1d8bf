"""/api/v1/business routes for an organisation's credentials: API keys and the IP allow-list.

All of them need a signed-in admin of the organisation: a key never manages keys or the
allow-list.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from diboas.api.deps import DatabaseDep, SettingsDep
from diboas.business import schemas
from diboas.business.access import MANAGE, Principal, loopback_allowed, org_access
from diboas.business.repository import AllowlistEntry, ApiKey
from diboas.business.service import allowlist, api_keys

router = APIRouter()

Admin = Annotated[Principal, org_access(MANAGE)]


def _key_out(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(key.scopes),
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "revoked_at": key.revoked_at,
        "revoked": key.revoked_at is not None,
    }


def _entry_out(entry: AllowlistEntry) -> schemas.AllowlistEntryOut:
    return schemas.AllowlistEntryOut(
        id=entry.id, cidr=str(entry.cidr), label=entry.label, created_at=entry.created_at
    )


def _admin_id(principal: Principal) -> uuid.UUID:
    if principal.user is None:  # the Admin action admits no key; explicit for the type checker
        raise RuntimeError("an admin route was reached without a user")
    return principal.user.id


# --- API keys ------------------------------------------------------------------------------------


@router.post(
    "/organisations/{organisation_id}/api-keys",
    status_code=201,
    summary="Create a scoped API key (its secret is shown this once)",
)
async def create_api_key(
    body: schemas.ApiKeyIn,
    principal: Admin,
    request: Request,
    response: Response,
    db: DatabaseDep,
) -> schemas.IssuedApiKeyOut:
    response.headers["Cache-Control"] = "no-store"
    context = principal.audit_context(request)
    admin_id = _admin_id(principal)
    issued = await db.run(
        lambda s: api_keys.create(
            s,
            organisation_id=principal.organisation_id,
            name=body.name,
            scopes=list(body.scopes),
            created_by=admin_id,
            context=context,
        )
    )
    return schemas.IssuedApiKeyOut(**_key_out(issued.key), key=issued.plaintext)


@router.get(
    "/organisations/{organisation_id}/api-keys",
    summary="The organisation's API keys (never their secrets)",
)
async def list_api_keys(principal: Admin, db: DatabaseDep) -> list[schemas.ApiKeyOut]:
    found = await db.run(lambda s: api_keys.listed(s, principal.organisation_id))
    return [schemas.ApiKeyOut(**_key_out(k)) for k in found]


@router.delete(
    "/organisations/{organisation_id}/api-keys/{api_key_id}",
    summary="Revoke an API key (refused from its next request on)",
)
async def revoke_api_key(
    api_key_id: uuid.UUID, principal: Admin, request: Request, db: DatabaseDep
) -> schemas.ApiKeyOut:
    context = principal.audit_context(request)
    admin_id = _admin_id(principal)
    key = await db.run(
        lambda s: api_keys.revoke(
            s,
            organisation_id=principal.organisation_id,
            key_id=api_key_id,
            revoked_by=admin_id,
            context=context,
        )
    )
    return schemas.ApiKeyOut(**_key_out(key))


# --- IP allow-list -------------------------------------------------------------------------------


@router.get(
    "/organisations/{organisation_id}/ip-allowlist",
    summary="The networks requests to this organisation may come from",
)
async def get_allowlist(
    principal: Admin, db: DatabaseDep, settings: SettingsDep
) -> schemas.AllowlistOut:
    found = await db.run(lambda s: allowlist.entries(s, principal.organisation_id))
    return schemas.AllowlistOut(
        entries=[_entry_out(e) for e in found],
        loopback_allowed=loopback_allowed(settings),
        your_ip=principal.client_ip,
    )


@router.post(
    "/organisations/{organisation_id}/ip-allowlist",
    status_code=201,
    summary="Allow a network (CIDR)",
)
async def add_allowlist_entry(
    body: schemas.AllowlistEntryIn,
    principal: Admin,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
) -> schemas.AllowlistEntryOut:
    context = principal.audit_context(request)
    entry = await db.run(
        lambda s: allowlist.add(
            s, settings, principal, cidr=body.cidr, label=body.label, context=context
        )
    )
    return _entry_out(entry)


@router.delete(
    "/organisations/{organisation_id}/ip-allowlist/{entry_id}",
    status_code=204,
    summary="Remove a network (refused if it would lock you out)",
)
async def remove_allowlist_entry(
    entry_id: uuid.UUID,
    principal: Admin,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
) -> Response:
    context = principal.audit_context(request)
    await db.run(
        lambda s: allowlist.remove(s, settings, principal, entry_id=entry_id, context=context)
    )
    return Response(status_code=204)
