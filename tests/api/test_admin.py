"""Admin and support endpoints: the audit log (support and admin) and the ledger check (admin
only); the audit log holds the sensitive actions of sign-up, sign-in, lockout and KYC."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.db.migrate import upgrade
from diboas.db.urls import plain_url, with_database
from tests.api.conftest import Mailbox, settings_for_tests, sign_in, sign_up

API = "/api/v1"
KYC = {
    "first_name": "Edsger",
    "last_name": "Dijkstra",
    "date_of_birth": "1980-05-11",
    "country": "NL",
    "address": "Plantage Muidergracht 24, Amsterdam",
    "document_type": "national_id",
    "document_number": "NL9876543",
}


async def signed_in_as(client: httpx.AsyncClient, engine: AsyncEngine, role: str) -> dict[str, Any]:
    account = await sign_up(client)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = :r WHERE email = :e"), {"r": role, "e": account["email"]}
        )
    return {**account, **await sign_in(client, account["email"])}  # the role is in the new token


@pytest.mark.parametrize(
    ("role", "audit_status", "verify_status"),
    [("customer", 403, 403), ("support", 200, 403), ("admin", 200, 200)],
)
async def test_who_may_read_the_audit_log_and_verify_the_ledger(
    client: httpx.AsyncClient, engine: AsyncEngine, role: str, audit_status: int, verify_status: int
) -> None:
    caller = await signed_in_as(client, engine, role)
    log = await client.get(f"{API}/admin/audit-log", headers=caller["headers"])
    assert log.status_code == audit_status
    verify = await client.get(f"{API}/admin/ledger/verify", headers=caller["headers"])
    assert verify.status_code == verify_status
    for response, status in ((log, audit_status), (verify, verify_status)):
        if status == 403:
            assert response.json()["error"]["code"] == "forbidden"


async def test_signed_out_is_401(client: httpx.AsyncClient) -> None:
    for path in ("/admin/audit-log", "/admin/ledger/verify"):
        response = await client.get(f"{API}{path}")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


async def test_the_admin_verifies_an_intact_ledger(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    admin = await signed_in_as(client, engine, "admin")
    response = await client.get(f"{API}/admin/ledger/verify", headers=admin["headers"])
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["breaks"] == []
    assert set(body) == {"ok", "entries", "postings", "accounts", "breaks"}
    async with engine.connect() as conn:
        entries = (await conn.execute(text("SELECT count(*) FROM entries"))).scalar_one()
        accounts = (await conn.execute(text("SELECT count(*) FROM balances"))).scalar_one()
    # Other tests may commit entries meanwhile: the report saw at least what was there before.
    assert body["entries"] <= entries and body["accounts"] <= accounts
    async with engine.connect() as conn:
        audited = (
            await conn.execute(
                text(
                    "SELECT outcome, details FROM audit_log WHERE actor_id = :u AND action = 'ledger.verify'"
                ),
                {"u": admin["user"]["id"]},
            )
        ).one()
    assert audited.outcome == "success" and audited.details["breaks"] == 0


@pytest.fixture
async def broken_ledger_database(database_server: str) -> AsyncIterator[URL]:
    """A database of its own whose ledger has one tampered posting (committed)."""
    name = f"diboas_scratch_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(plain_url(with_database(database_server, "postgres")))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(database_server, name)
    try:
        await upgrade(url)
        raw = await asyncpg.connect(plain_url(url))
        try:
            ids = [
                await raw.fetchval(
                    "INSERT INTO accounts (owner_type, owner_id, domain, asset, kind) VALUES ($1, $2, $3, 'USD', $4) RETURNING id",
                    *spec,
                )
                for spec in (
                    ("platform", uuid.UUID(int=0), "platform", "external"),
                    ("user", uuid.uuid4(), "banking", "available"),
                )
            ]
            await raw.execute(
                "SELECT ledger_post('deposit', $1::bigint[], $2::numeric[])",
                ids,
                [Decimal("-9.99"), Decimal("9.99")],
            )
            async with raw.transaction():
                await raw.execute("SET LOCAL session_replication_role = replica")
                await raw.execute(
                    "UPDATE postings SET amount = 99.99 WHERE account_id = $1", ids[1]
                )
        finally:
            await raw.close()
        yield url
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_the_admin_sees_every_break_of_a_tampered_ledger(
    broken_ledger_database: URL, mailbox: tuple[Mailbox, int]
) -> None:
    app = create_app(settings_for_tests(mailbox[1]), database_url=plain_url(broken_ledger_database))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        account = await sign_up(client)
        engine: AsyncEngine = app.state.engine
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE users SET role = 'admin' WHERE email = :e"), {"e": account["email"]}
            )
        admin = await sign_in(client, account["email"])
        response = await client.get(f"{API}/admin/ledger/verify", headers=admin["headers"])
        assert response.status_code == 200
        body = response.json()
        assert body["ok"] is False
        assert (body["entries"], body["postings"], body["accounts"]) == (1, 2, 2)
        kinds = {b["kind"] for b in body["breaks"]}
        assert {"balance", "chain", "unbalanced"} <= kinds
        assert any("postings sum to 99.99" in b["message"] for b in body["breaks"])
        async with engine.connect() as conn:
            outcome = (
                await conn.execute(
                    text("SELECT outcome FROM audit_log WHERE action = 'ledger.verify'")
                )
            ).scalar_one()
        assert outcome == "failure"


async def test_the_audit_log_records_sign_up_failed_sign_ins_lockout_and_kyc(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    person = await sign_up(client)
    kyc = await client.post(f"{API}/kyc/submissions", headers=person["headers"], json=KYC)
    assert kyc.status_code == 201
    # Test settings lock an account after 3 failures in a row.
    for _ in range(3):
        failed = await client.post(
            f"{API}/auth/login", json={"email": person["email"], "password": "wrong-password-123"}
        )
        assert failed.status_code in (401, 423)
    assert failed.status_code == 423

    support = await signed_in_as(client, engine, "support")
    response = await client.get(
        f"{API}/admin/audit-log",
        headers=support["headers"],
        params={"actor_id": person["user"]["id"], "limit": 200},
    )
    assert response.status_code == 200
    items = response.json()["items"]
    assert all(x["actor_id"] == person["user"]["id"] for x in items)
    seen = [(x["action"], x["outcome"]) for x in reversed(items)]  # oldest first
    assert seen == [
        ("user.register", "success"),
        ("auth.login", "success"),
        ("kyc.decision", "success"),
        ("auth.login", "failure"),
        ("auth.login", "failure"),
        ("auth.login", "failure"),
        ("auth.lockout", "success"),
    ]
    kyc_row = next(x for x in items if x["action"] == "kyc.decision")
    assert kyc_row["subject_type"] == "kyc_submission" and kyc_row["subject_id"] == kyc.json()["id"]
    assert kyc_row["details"]["status"] == "approved" and kyc_row["request_id"]
    assert all(x["ip"] for x in items)

    # The reader's look at the log is on the record too.
    own = await client.get(
        f"{API}/admin/audit-log",
        headers=support["headers"],
        params={"actor_id": support["user"]["id"], "action": "audit_log.read"},
    )
    (read,) = own.json()["items"]
    assert read["details"]["actor_id"] == person["user"]["id"]
    assert read["actor_role"] == "support"


async def test_the_audit_log_pages_newest_first(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    person = await sign_up(client)
    for _ in range(3):
        await sign_in(client, person["email"])
    admin = await signed_in_as(client, engine, "admin")
    params: dict[str, Any] = {"actor_id": person["user"]["id"], "limit": 2}
    first = (
        await client.get(f"{API}/admin/audit-log", headers=admin["headers"], params=params)
    ).json()
    assert len(first["items"]) == 2 and first["next_before_id"] == first["items"][-1]["id"]
    params["before_id"] = first["next_before_id"]
    second = (
        await client.get(f"{API}/admin/audit-log", headers=admin["headers"], params=params)
    ).json()
    assert len(second["items"]) == 2 and second["next_before_id"] is not None
    params["before_id"] = second["next_before_id"]
    last = (
        await client.get(f"{API}/admin/audit-log", headers=admin["headers"], params=params)
    ).json()
    # register + 4 sign-ins (sign_up signs in once) = 5 rows.
    assert len(last["items"]) == 1 and last["next_before_id"] is None
    ids = [x["id"] for page in (first, second, last) for x in page["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5
    assert last["items"][0]["action"] == "user.register"

    logins = await client.get(
        f"{API}/admin/audit-log",
        headers=admin["headers"],
        params={"actor_id": person["user"]["id"], "action": "auth.login"},
    )
    assert [x["action"] for x in logins.json()["items"]] == ["auth.login"] * 4


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 201},
        {"limit": 0},
        {"before_id": 0},
        {"before_id": "x"},
        {"actor_id": "not-a-uuid"},
        {"action": "DROP TABLE audit_log"},
        {"action": "a" * 65},
    ],
)
async def test_bad_audit_log_filters_are_422(
    client: httpx.AsyncClient, engine: AsyncEngine, params: dict[str, Any]
) -> None:
    admin = await signed_in_as(client, engine, "admin")
    response = await client.get(f"{API}/admin/audit-log", headers=admin["headers"], params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
