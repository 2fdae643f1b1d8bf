"""Organisations over HTTP: lifecycle, members and roles, the last admin, treasury funding."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from tests.api.conftest import sign_in, sign_up
from tests.banking.helpers import API, balance, customer, fund
from tests.business.helpers import BUSINESS, add_member, create_organisation, org_path
from tests.orchestration.conftest import assert_ledger_clean


async def test_create_list_and_get_an_organisation(client: httpx.AsyncClient) -> None:
    founder = await sign_up(client)
    created = await create_organisation(client, founder["headers"], "Acme Ltd")
    assert created["name"] == "Acme Ltd" and created["role"] == "admin"

    mine = await client.get(f"{BUSINESS}/organisations", headers=founder["headers"])
    assert mine.status_code == 200
    assert [(o["id"], o["role"]) for o in mine.json()] == [(created["id"], "admin")]

    one = await client.get(org_path(created["id"]), headers=founder["headers"])
    assert one.status_code == 200 and one.json()["id"] == created["id"]

    members = await client.get(org_path(created["id"], "/members"), headers=founder["headers"])
    assert [(m["email"], m["role"]) for m in members.json()] == [(founder["email"], "admin")]


async def test_signed_out_is_401_and_another_organisation_is_404(
    client: httpx.AsyncClient,
) -> None:
    founder, stranger = await sign_up(client), await sign_up(client)
    created = await create_organisation(client, founder["headers"])
    assert (await client.get(org_path(created["id"]))).status_code == 401
    for path in ("", "/members", "/treasury", "/api-keys", "/payouts", "/audit-log"):
        refused = await client.get(org_path(created["id"], path), headers=stranger["headers"])
        assert refused.status_code == 404, path
        assert refused.json()["error"]["code"] == "organisation_not_found"
    missing = await client.get(org_path(str(uuid.uuid4())), headers=founder["headers"])
    assert missing.status_code == 404


async def test_members_are_added_by_email_with_a_role_and_roles_limit_them(
    client: httpx.AsyncClient,
) -> None:
    founder, viewer = await sign_up(client), await sign_up(client)
    organisation = await create_organisation(client, founder["headers"])
    oid = organisation["id"]

    added = await add_member(client, founder["headers"], oid, viewer["email"].upper(), "viewer")
    assert added.status_code == 201, added.text
    assert added.json()["role"] == "viewer"
    again = await add_member(client, founder["headers"], oid, viewer["email"], "member")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_member"
    unknown = await add_member(client, founder["headers"], oid, "nobody@example.com", "member")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "user_not_found"
    bad_role = await add_member(client, founder["headers"], oid, viewer["email"], "owner")
    assert bad_role.status_code == 422

    # A viewer reads, but manages nothing.
    assert (await client.get(org_path(oid), headers=viewer["headers"])).json()["role"] == "viewer"
    refused = await add_member(client, viewer["headers"], oid, founder["email"], "viewer")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "organisation_role_required"
    listed = await client.get(f"{BUSINESS}/organisations", headers=viewer["headers"])
    assert [o["role"] for o in listed.json()] == ["viewer"]

    promoted = await client.patch(
        org_path(oid, f"/members/{viewer['user']['id']}"),
        headers=founder["headers"],
        json={"role": "admin"},
    )
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    removed = await client.delete(
        org_path(oid, f"/members/{viewer['user']['id']}"), headers=founder["headers"]
    )
    assert removed.status_code == 204
    gone = await client.get(org_path(oid), headers=viewer["headers"])
    assert gone.status_code == 404


async def test_the_last_admin_can_be_neither_demoted_nor_removed(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    founder, other = await sign_up(client), await sign_up(client)
    oid = (await create_organisation(client, founder["headers"]))["id"]
    me = founder["user"]["id"]
    demote = await client.patch(
        org_path(oid, f"/members/{me}"), headers=founder["headers"], json={"role": "member"}
    )
    assert demote.status_code == 409 and demote.json()["error"]["code"] == "last_admin"
    remove = await client.delete(org_path(oid, f"/members/{me}"), headers=founder["headers"])
    assert remove.status_code == 409 and remove.json()["error"]["code"] == "last_admin"

    # With a second admin, the first may step down.
    await add_member(client, founder["headers"], oid, other["email"], "admin")
    stepped = await client.patch(
        org_path(oid, f"/members/{me}"), headers=founder["headers"], json={"role": "viewer"}
    )
    assert stepped.status_code == 200
    last = await client.delete(
        org_path(oid, f"/members/{other['user']['id']}"), headers=other["headers"]
    )
    assert last.status_code == 409

    # The database refuses it too, even through raw SQL (checked at commit).
    async with engine.connect() as conn:
        await conn.execute(
            text("DELETE FROM organisation_members WHERE organisation_id = :o AND role = 'admin'"),
            {"o": oid},
        )
        with pytest.raises(DBAPIError, match="would have no admin"):
            await conn.commit()


async def test_an_admin_funds_the_treasury_from_their_own_balance_once_per_key(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin = await customer(client, engine)
    await fund(sessions, admin["id"], "300.00")
    oid = (await create_organisation(client, admin["headers"]))["id"]
    body = {"amount": "120.50", "currency": "USD"}
    headers = {**admin["headers"], "Idempotency-Key": f"fund-{uuid.uuid4()}"}

    first = await client.post(org_path(oid, "/treasury/fundings"), headers=headers, json=body)
    assert first.status_code == 201, first.text
    again = await client.post(org_path(oid, "/treasury/fundings"), headers=headers, json=body)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other_body = await client.post(
        org_path(oid, "/treasury/fundings"), headers=headers, json={**body, "amount": "1.00"}
    )
    assert other_body.status_code == 422

    assert await balance(engine, admin["id"]) == Decimal("179.50")
    treasury = await client.get(org_path(oid, "/treasury"), headers=admin["headers"])
    assert treasury.status_code == 200
    assert treasury.headers["Cache-Control"] == "no-store"
    sheet = treasury.json()
    assert sheet["total_usd"] == "120.50"
    assert sheet["domains"]["banking"]["total_usd"] == "120.50"
    # (priced_at and price_stale, the valuation's freshness, are checked in tests/market)
    skip = ("priced_at", "price_stale")
    shown = [{k: v for k, v in a.items() if k not in skip} for a in sheet["assets"]]
    assert shown == [
        {
            "asset": "USD",
            "domain": "banking",
            "available": "120.50",
            "held": "0.00",
            "value_usd": "120.50",
            "owed": "0.00",
        }
    ]
    # The funding is the admin's own transaction, pollable like any movement.
    txn = await client.get(f"{API}/transactions/{first.json()['id']}", headers=admin["headers"])
    assert txn.json()["type"] == "transfer_out" and txn.json()["amount"] == "120.50"
    # The admin's own balance still reads as before (the treasury is not theirs).
    mine = await client.get(f"{API}/balances", headers=admin["headers"])
    assert mine.json()["total_usd"] == "179.50"
    await assert_ledger_clean(engine)


async def test_funding_needs_the_money_an_admin_and_a_verified_customer(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin = await customer(client, engine)
    oid = (await create_organisation(client, admin["headers"]))["id"]
    body = {"amount": "10.00", "currency": "USD"}
    poor = await client.post(
        org_path(oid, "/treasury/fundings"), headers=admin["headers"], json=body
    )
    assert poor.status_code == 422 and poor.json()["error"]["code"] == "insufficient_funds"
    for amount in ("0", "-1.00", "1.001", "1e3"):
        bad = await client.post(
            org_path(oid, "/treasury/fundings"),
            headers=admin["headers"],
            json={"amount": amount, "currency": "USD"},
        )
        assert bad.status_code == 422, amount
    numeric = await client.post(
        org_path(oid, "/treasury/fundings"),
        headers=admin["headers"],
        json={"amount": 10, "currency": "USD"},
    )
    assert numeric.status_code == 422

    member = await customer(client, engine)
    await fund(sessions, member["id"], "50.00")
    await add_member(client, admin["headers"], oid, member["email"], "member")
    refused = await client.post(
        org_path(oid, "/treasury/fundings"), headers=member["headers"], json=body
    )
    assert refused.status_code == 403

    unverified = await sign_up(client)  # KYC tier 0 moves no money
    unverified_org = (await create_organisation(client, unverified["headers"]))["id"]
    kyc = await client.post(
        org_path(unverified_org, "/treasury/fundings"), headers=unverified["headers"], json=body
    )
    assert kyc.status_code == 403 and kyc.json()["error"]["code"] == "kyc_required"


async def test_a_role_without_business_access_is_403(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    founder = await sign_up(client)
    oid = (await create_organisation(client, founder["headers"]))["id"]
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = 'support' WHERE email = :e"), {"e": founder["email"]}
        )
    support = await sign_in(client, founder["email"])  # the role travels in the new token
    for path in (f"{BUSINESS}/organisations", org_path(oid)):
        refused = await client.get(path, headers=support["headers"])
        assert refused.status_code == 403, path
        assert refused.json()["error"]["code"] == "forbidden"


async def test_members_leave_on_their_own_but_the_last_admin_stays(
    client: httpx.AsyncClient,
) -> None:
    founder, viewer = await sign_up(client), await sign_up(client)
    oid = (await create_organisation(client, founder["headers"]))["id"]
    await add_member(client, founder["headers"], oid, viewer["email"], "viewer")
    left = await client.post(org_path(oid, "/leave"), headers=viewer["headers"])
    assert left.status_code == 204
    assert (await client.get(org_path(oid), headers=viewer["headers"])).status_code == 404
    stays = await client.post(org_path(oid, "/leave"), headers=founder["headers"])
    assert stays.status_code == 409 and stays.json()["error"]["code"] == "last_admin"


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    for _ in range(3):
        first, second = await sign_up(client), await sign_up(client)
        oid = (await create_organisation(client, first["headers"]))["id"]
        await add_member(client, first["headers"], oid, second["email"], "admin")
        demote_second = client.patch(
            org_path(oid, f"/members/{second['user']['id']}"),
            headers=first["headers"],
            json={"role": "member"},
        )
        demote_first = client.patch(
            org_path(oid, f"/members/{first['user']['id']}"),
            headers=second["headers"],
            json={"role": "member"},
        )
        answers = await asyncio.gather(demote_second, demote_first)
        assert sorted(r.status_code for r in answers)[0] == 200
        assert {r.status_code for r in answers} <= {200, 403, 409}
        async with engine.connect() as conn:
            admins = (
                await conn.execute(
                    text("""SELECT count(*) FROM organisation_members
                             WHERE organisation_id = :o AND role = 'admin'"""),
                    {"o": oid},
                )
            ).scalar_one()
        assert admins == 1
