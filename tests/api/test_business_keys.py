"""Organisation API keys and the IP allow-list over HTTP: keys shown once and stored hashed,
exact scopes, revocation; requests from outside the allow-list refused."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.business.service.api_keys import key_hash
from tests.api.conftest import Mailbox, _client, sign_up
from tests.business.helpers import (
    add_member,
    business_app,
    create_key,
    create_organisation,
    key_headers,
    org_path,
    outside_client,
)


async def test_a_key_is_shown_once_and_only_its_hash_is_stored(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    admin = await sign_up(client)
    oid = (await create_organisation(client, admin["headers"]))["id"]
    created = await create_key(client, admin["headers"], oid, ["treasury:read", "payouts:read"])
    found = re.fullmatch(r"dbk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", created["key"])
    assert found is not None
    prefix, secret = found.groups()
    assert created["prefix"] == prefix
    assert created["scopes"] == ["payouts:read", "treasury:read"]

    listed = await client.get(org_path(oid, "/api-keys"), headers=admin["headers"])
    assert listed.status_code == 200
    assert secret not in listed.text and "key" not in listed.json()[0]

    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT b::text AS everything, secret_hash FROM business_api_keys b "
                    "WHERE prefix = :p"
                ),
                {"p": prefix},
            )
        ).one()
    assert secret not in row.everything and created["key"] not in row.everything
    assert bytes(row.secret_hash) == key_hash(prefix, secret)


async def test_a_key_acts_for_its_organisation_with_exactly_its_scopes(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    admin = await sign_up(client)
    oid = (await create_organisation(client, admin["headers"]))["id"]
    other = (await create_organisation(client, admin["headers"], "Other Co"))["id"]
    key = await create_key(client, admin["headers"], oid, ["treasury:read"])
    headers = key_headers(key)

    assert (await client.get(org_path(oid, "/treasury"), headers=headers)).status_code == 200
    missing = await client.get(org_path(oid, "/members"), headers=headers)
    assert missing.status_code == 403
    assert missing.json()["error"]["code"] == "insufficient_scope"
    # Managing the organisation is never delegated to a key, whatever its scopes.
    manage = await add_member(client, headers, oid, admin["email"], "viewer")
    assert manage.status_code == 403 and manage.json()["error"]["code"] == "user_required"
    assert (await client.get(org_path(oid, "/api-keys"), headers=headers)).status_code == 403
    # Another organisation of the same admin is not the key's: 404.
    assert (await client.get(org_path(other, "/treasury"), headers=headers)).status_code == 404
    # Keys do not reach the rest of the API.
    assert (await client.get("/api/v1/balances", headers=headers)).status_code == 401

    async with engine.connect() as conn:
        used = (
            await conn.execute(
                text("SELECT last_used_at FROM business_api_keys WHERE id = :id"),
                {"id": key["id"]},
            )
        ).scalar_one()
    assert used is not None


async def test_unknown_wrong_and_revoked_keys_are_401(client: httpx.AsyncClient) -> None:
    admin = await sign_up(client)
    oid = (await create_organisation(client, admin["headers"]))["id"]
    key = await create_key(client, admin["headers"], oid, ["treasury:read"])
    tampered = key["key"][:-1] + ("A" if key["key"][-1] != "A" else "B")
    for presented in ("dbk_nothing", tampered, f"dbk_{'0' * 12}_{'a' * 43}"):
        refused = await client.get(
            org_path(oid, "/treasury"), headers={"Authorization": f"Bearer {presented}"}
        )
        assert refused.status_code == 401, presented
        assert refused.json()["error"]["code"] == "invalid_api_key"

    revoked = await client.delete(org_path(oid, f"/api-keys/{key['id']}"), headers=admin["headers"])
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    after = await client.get(org_path(oid, "/treasury"), headers=key_headers(key))
    assert after.status_code == 401
    unknown = await client.delete(
        org_path(oid, f"/api-keys/{uuid.uuid4()}"), headers=admin["headers"]
    )
    assert unknown.status_code == 404
    listed = await client.get(org_path(oid, "/api-keys"), headers=admin["headers"])
    assert [k["revoked"] for k in listed.json()] == [True]


async def test_only_admins_manage_keys_and_scopes_are_checked(client: httpx.AsyncClient) -> None:
    admin, member = await sign_up(client), await sign_up(client)
    oid = (await create_organisation(client, admin["headers"]))["id"]
    await add_member(client, admin["headers"], oid, member["email"], "member")
    refused = await client.post(
        org_path(oid, "/api-keys"),
        headers=member["headers"],
        json={"name": "mine", "scopes": ["treasury:read"]},
    )
    assert refused.status_code == 403
    for scopes in ([], ["admin:everything"], "treasury:read"):
        bad = await client.post(
            org_path(oid, "/api-keys"),
            headers=admin["headers"],
            json={"name": "k", "scopes": scopes},
        )
        assert bad.status_code == 422, scopes


async def test_requests_from_outside_the_allow_list_are_refused(
    client: httpx.AsyncClient,
) -> None:
    admin = await sign_up(client)
    oid = (await create_organisation(client, admin["headers"]))["id"]
    key = await create_key(client, admin["headers"], oid, ["treasury:read"])
    # Created from loopback, which the test profile allows anyway: nothing else is listed.
    listing = await client.get(org_path(oid, "/ip-allowlist"), headers=admin["headers"])
    assert listing.json()["entries"] == [] and listing.json()["loopback_allowed"] is True

    async with outside_client(client) as outside:
        for headers in (admin["headers"], key_headers(key)):
            refused = await outside.get(org_path(oid, "/treasury"), headers=headers)
            assert refused.status_code == 403
            assert refused.json()["error"]["code"] == "ip_not_allowed"
            assert refused.json()["error"]["details"]["ip"] == "203.0.113.9"

        added = await client.post(
            org_path(oid, "/ip-allowlist"),
            headers=admin["headers"],
            json={"cidr": "203.0.113.0/24", "label": "office"},
        )
        assert added.status_code == 201, added.text
        for headers in (admin["headers"], key_headers(key)):
            assert (
                await outside.get(org_path(oid, "/treasury"), headers=headers)
            ).status_code == 200

        # Removing the network the admin stands in would lock them out: refused.
        entry = added.json()["id"]
        lockout = await outside.delete(
            org_path(oid, f"/ip-allowlist/{entry}"), headers=admin["headers"]
        )
        assert lockout.status_code == 422
        assert lockout.json()["error"]["code"] == "allowlist_would_lock_you_out"
        removed = await client.delete(
            org_path(oid, f"/ip-allowlist/{entry}"), headers=admin["headers"]
        )
        assert removed.status_code == 204
        again = await outside.get(org_path(oid, "/treasury"), headers=key_headers(key))
        assert again.status_code == 403

    # Each refusal is on the organisation's audit log, with the address and the key.
    log = await client.get(org_path(oid, "/audit-log"), headers=admin["headers"])
    refusals = [i for i in log.json()["items"] if i["action"] == "business.ip_refused"]
    assert len(refusals) == 3
    assert {r["ip"] for r in refusals} == {"203.0.113.9"}
    assert refusals[0]["details"]["api_key_id"] == key["id"]
    assert refusals[0]["outcome"] == "refused"
    assert refusals[-1]["actor_email"] == admin["email"]


async def test_allow_list_entries_must_be_networks(client: httpx.AsyncClient) -> None:
    admin = await sign_up(client)
    oid = (await create_organisation(client, admin["headers"]))["id"]
    for cidr in ("10.0.0.1/8", "nonsense", "300.1.1.1", "10.0.0.0/33"):
        bad = await client.post(
            org_path(oid, "/ip-allowlist"), headers=admin["headers"], json={"cidr": cidr}
        )
        assert bad.status_code == 422, cidr
    ok = await client.post(
        org_path(oid, "/ip-allowlist"), headers=admin["headers"], json={"cidr": "2001:db8::/32"}
    )
    assert ok.status_code == 201 and ok.json()["cidr"] == "2001:db8::/32"
    dup = await client.post(
        org_path(oid, "/ip-allowlist"), headers=admin["headers"], json={"cidr": "2001:db8::/32"}
    )
    assert dup.status_code == 409


@pytest.fixture
async def production_like(
    database_url: URL, mailbox: tuple[Mailbox, int]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app as production runs it: loopback not allowed, nginx at 10.0.0.0/8 trusted."""
    app = business_app(
        database_url,
        mailbox[1],
        business_allow_loopback=False,
        business_trusted_proxies=["10.0.0.0/8"],
    )
    async for c in _client(app):
        yield c


async def test_production_default_starts_with_the_creators_address_only(
    production_like: httpx.AsyncClient,
) -> None:
    async with outside_client(production_like, "198.51.100.7") as office:
        admin = await sign_up(office)
        oid = (await create_organisation(office, admin["headers"]))["id"]
        listing = await office.get(org_path(oid, "/ip-allowlist"), headers=admin["headers"])
        assert listing.status_code == 200
        body = listing.json()
        assert [e["cidr"] for e in body["entries"]] == ["198.51.100.7/32"]
        assert body["loopback_allowed"] is False and body["your_ip"] == "198.51.100.7"
    # Loopback is not special in production.
    refused = await production_like.get(org_path(oid), headers=admin["headers"])
    assert refused.status_code == 403
    # Through the trusted proxy, the forwarded address counts...
    async with outside_client(production_like, "10.1.2.3") as proxy:
        forwarded = {**admin["headers"], "X-Forwarded-For": "192.0.2.1, 198.51.100.7"}
        assert (await proxy.get(org_path(oid), headers=forwarded)).status_code == 200
        spoofed = {**admin["headers"], "X-Forwarded-For": "198.51.100.7, 192.0.2.1"}
        assert (await proxy.get(org_path(oid), headers=spoofed)).status_code == 403
    # ...and from anyone else it is ignored.
    async with outside_client(production_like, "203.0.113.9") as stranger:
        forged = {**admin["headers"], "X-Forwarded-For": "198.51.100.7"}
        assert (await stranger.get(org_path(oid), headers=forged)).status_code == 403


async def test_another_organisations_keys_entries_and_members_are_404(
    client: httpx.AsyncClient,
) -> None:
    admin, other_admin = await sign_up(client), await sign_up(client)
    mine = (await create_organisation(client, admin["headers"]))["id"]
    theirs = (await create_organisation(client, other_admin["headers"], "Theirs"))["id"]
    their_key = await create_key(client, other_admin["headers"], theirs, ["treasury:read"])
    their_entry = await client.post(
        org_path(theirs, "/ip-allowlist"),
        headers=other_admin["headers"],
        json={"cidr": "192.0.2.0/24"},
    )
    # Through my organisation's path, their ids do not exist.
    revoke = await client.delete(
        org_path(mine, f"/api-keys/{their_key['id']}"), headers=admin["headers"]
    )
    assert revoke.status_code == 404
    entry = await client.delete(
        org_path(mine, f"/ip-allowlist/{their_entry.json()['id']}"), headers=admin["headers"]
    )
    assert entry.status_code == 404
    member = await client.patch(
        org_path(mine, f"/members/{other_admin['user']['id']}"),
        headers=admin["headers"],
        json={"role": "viewer"},
    )
    assert member.status_code == 404
    # And their key still works for them.
    alive = await client.get(org_path(theirs, "/treasury"), headers=key_headers(their_key))
    assert alive.status_code == 200


async def test_in_production_loopback_is_never_seeded_nor_allowed(
    production_like: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # A deployment behind a local proxy not configured as trusted sees every request from
    # loopback: the organisation then stays closed instead of open to everyone.
    admin = await sign_up(production_like)
    oid = (await create_organisation(production_like, admin["headers"]))["id"]
    refused = await production_like.get(org_path(oid), headers=admin["headers"])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "ip_not_allowed"
    async with outside_client(production_like, "10.9.9.9") as proxy:  # a trusted proxy
        forwarded = {**admin["headers"], "X-Forwarded-For": "127.0.0.1"}
        assert (await proxy.get(org_path(oid), headers=forwarded)).status_code == 403
    # Support opens the office's address (in SQL here); loopback still cannot be listed.
    async with engine.begin() as conn:
        await conn.execute(
            text("""INSERT INTO organisation_ip_allowlist (id, organisation_id, cidr)
                    VALUES (:id, :org, '198.51.100.7/32')"""),
            {"id": uuid.uuid4(), "org": oid},
        )
    async with outside_client(production_like, "198.51.100.7") as office:
        assert (await office.get(org_path(oid), headers=admin["headers"])).status_code == 200
        listed = await office.post(
            org_path(oid, "/ip-allowlist"), headers=admin["headers"], json={"cidr": "127.0.0.0/8"}
        )
        assert listed.status_code == 422
