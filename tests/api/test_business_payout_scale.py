"""A payout batch of the largest allowed size validates and executes in one transaction, well
inside the ledger's commit window (entries must commit within 10 s of their timestamp)."""

from __future__ import annotations

import time
import uuid

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from tests.business.helpers import funded_organisation, org_path
from tests.orchestration.conftest import assert_ledger_clean

ROWS = 1000  # DIBOAS_BUSINESS_PAYOUT_MAX_ROWS' default


async def test_the_largest_batch_is_paid_in_one_transaction(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin, organisation = await funded_organisation(client, engine, sessions, "2000.00")
    oid = organisation["id"]
    tag = uuid.uuid4().hex[:8]
    emails = [f"payee-{tag}-{i}@example.com" for i in range(ROWS)]
    async with engine.begin() as conn:  # recipients straight in SQL: Argon2 per sign-up is slow
        await conn.execute(
            text("""INSERT INTO users (id, email, full_name, password_hash)
                    VALUES (:id, :email, 'Payee Person', '$argon2id$not-a-real-hash')"""),
            [{"id": uuid.uuid4(), "email": e} for e in emails],
        )
    content = (
        "recipient_email,amount,currency,note\n"
        + "".join(f"{e},1.{i % 100:02d},USD,row {i}\n" for i, e in enumerate(emails))
    ).encode()
    started = time.perf_counter()
    report = await client.post(
        org_path(oid, "/payouts"),
        headers=admin["headers"],
        files={"file": ("big.csv", content, "text/csv")},
    )
    validated = time.perf_counter()
    assert report.status_code == 201, report.text
    assert report.json()["status"] == "validated"
    paid = await client.post(
        org_path(oid, f"/payouts/{report.json()['id']}/execute"), headers=admin["headers"]
    )
    executed = time.perf_counter()
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "completed"
    print(f"validate {validated - started:.2f}s execute {executed - validated:.2f}s")
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                text("""SELECT count(*) FROM transactions t JOIN users u ON u.id = t.user_id
                         WHERE u.email LIKE :pattern AND t.type = 'transfer_in'"""),
                {"pattern": f"payee-{tag}-%"},
            )
        ).scalar_one()
    assert count == ROWS
    await assert_ledger_clean(engine)
