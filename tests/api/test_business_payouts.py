"""Bulk payouts over HTTP: a validation report before anything moves, execution once, the
recipients' balances and history, and the ledger clean afterwards."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.business.service import payout_execution
from diboas.db.engine import SessionFactory
from tests.api.conftest import sign_up
from tests.banking.helpers import API, balance, customer
from tests.business.helpers import (
    add_member,
    create_key,
    funded_organisation,
    key_headers,
    org_path,
)
from tests.orchestration.conftest import assert_ledger_clean


def _csv(*lines: str) -> bytes:
    return ("recipient_email,amount,currency,note\r\n" + "\r\n".join(lines) + "\r\n").encode()


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], oid: str, content: bytes
) -> httpx.Response:
    return await client.post(
        org_path(oid, "/payouts"),
        headers=headers,
        files={"file": ("payroll.csv", content, "text/csv")},
    )


async def treasury_usd(client: httpx.AsyncClient, headers: dict[str, str], oid: str) -> str:
    sheet = (await client.get(org_path(oid, "/treasury"), headers=headers)).json()
    return str(sheet["domains"]["banking"]["total_usd"])


async def test_the_validation_report_names_every_bad_row_and_nothing_moves(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin, organisation = await funded_organisation(client, engine, sessions, "500.00")
    oid = organisation["id"]
    alice, bob = await sign_up(client), await sign_up(client)
    listed = await sign_up(client, name="Pavel Ostrovetsky")  # on the sanctions list (data)
    report = await upload(
        client,
        admin["headers"],
        oid,
        _csv(
            f"{alice['email']},100.00,USD,Salary",
            f"{bob['email'].upper()},50.5,USD,",
            "nobody@example.com,10.00,USD,",
            f"{alice['email']},1.001,USD,",
            f"{alice['email']},-5,USD,",
            f"{alice['email']},100,USD,Salary",
            f"{listed['email']},10.00,USD,",
            f"{bob['email']},10.00,EUR,",
            f"{bob['email']},400.00,USD,",
            "not-an-email,1.00,USD,",
            f"{alice['email']},1e3,USD,",
            f"{alice['email']},1.00",
        ),
    )
    assert report.status_code == 201, report.text
    batch = report.json()
    assert batch["status"] == "invalid"
    assert batch["treasury_available"] == "500.00"
    assert (batch["row_count"], batch["invalid_count"]) == (12, 10)
    assert [(r["line"], r["status"], r["error_code"]) for r in batch["rows"]] == [
        (2, "ok", None),
        (3, "ok", None),
        (4, "invalid", "unknown_recipient"),
        (5, "invalid", "invalid_amount"),
        (6, "invalid", "invalid_amount"),
        (7, "invalid", "duplicate_row"),
        (8, "invalid", "recipient_not_allowed"),
        (9, "invalid", "unsupported_currency"),
        (10, "invalid", "insufficient_treasury_balance"),
        (11, "invalid", "invalid_email"),
        (12, "invalid", "invalid_amount"),
        (13, "invalid", "invalid_row"),
    ]
    assert batch["rows"][5]["error_message"] == "the same payout as line 2"

    refused = await client.post(
        org_path(oid, f"/payouts/{batch['id']}/execute"), headers=admin["headers"]
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "payout_batch_invalid"
    assert await balance(engine, alice["user"]["id"]) == 0
    assert await treasury_usd(client, admin["headers"], oid) == "500.00"
    # The screening hit is on record for compliance, though nothing was sent.
    async with engine.connect() as conn:
        screened = (
            await conn.execute(
                text("""SELECT count(*) FROM audit_log WHERE action = 'screening.refused'
                         AND subject_id = :id"""),
                {"id": listed["user"]["id"]},
            )
        ).scalar_one()
    assert screened == 1


async def test_a_valid_batch_pays_every_row_once(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin, organisation = await funded_organisation(client, engine, sessions, "500.00")
    oid = organisation["id"]
    alice, bob = await customer(client, engine), await customer(client, engine)
    report = await upload(
        client,
        admin["headers"],
        oid,
        _csv(f"{alice['email']},120.00,USD,November salary", f"{bob['email']},30.25,USD,"),
    )
    batch = report.json()
    assert batch["status"] == "validated" and batch["total"] == "150.25"

    path = org_path(oid, f"/payouts/{batch['id']}/execute")
    # Executed twice at the same time, and once more after: the money moves once.
    first, second = await asyncio.gather(
        client.post(path, headers=admin["headers"]), client.post(path, headers=admin["headers"])
    )
    third = await client.post(path, headers=admin["headers"])
    for response in (first, second, third):
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"
    replays = [r.headers.get("Idempotent-Replayed") for r in (first, second, third)]
    assert sorted(replays, key=str) == [None, "true", "true"]

    assert await balance(engine, alice["id"]) == Decimal("120.00")
    assert await balance(engine, bob["id"]) == Decimal("30.25")
    assert await treasury_usd(client, admin["headers"], oid) == "349.75"

    done = (
        await client.get(org_path(oid, f"/payouts/{batch['id']}"), headers=admin["headers"])
    ).json()
    assert [r["status"] for r in done["rows"]] == ["completed", "completed"]
    paid_to_alice = done["rows"][0]["transaction_id"]
    history = await client.get(f"{API}/transactions", headers=alice["headers"])
    (received,) = history.json()["items"]
    assert received["id"] == paid_to_alice
    assert (received["type"], received["status"], received["amount"], received["note"]) == (
        "transfer_in",
        "completed",
        "120.00",
        "November salary",
    )
    bob_history = (await client.get(f"{API}/transactions", headers=bob["headers"])).json()
    assert bob_history["items"][0]["note"] == f"Payout from {organisation['name']}"
    listed = await client.get(org_path(oid, "/payouts"), headers=admin["headers"])
    assert [b["status"] for b in listed.json()] == ["completed"]
    await assert_ledger_clean(engine)


async def test_execution_rechecks_the_treasury(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin, organisation = await funded_organisation(client, engine, sessions, "100.00")
    oid = organisation["id"]
    alice = await sign_up(client)
    first = (
        await upload(client, admin["headers"], oid, _csv(f"{alice['email']},80.00,USD,x"))
    ).json()
    second = (
        await upload(client, admin["headers"], oid, _csv(f"{alice['email']},80.00,USD,y"))
    ).json()
    assert first["status"] == second["status"] == "validated"
    ok = await client.post(
        org_path(oid, f"/payouts/{first['id']}/execute"), headers=admin["headers"]
    )
    assert ok.status_code == 200
    short = await client.post(
        org_path(oid, f"/payouts/{second['id']}/execute"), headers=admin["headers"]
    )
    assert short.status_code == 422 and short.json()["error"]["code"] == "insufficient_funds"
    still = await client.get(org_path(oid, f"/payouts/{second['id']}"), headers=admin["headers"])
    assert still.json()["status"] == "validated"
    await assert_ledger_clean(engine)


async def test_who_may_upload_and_execute(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin, organisation = await funded_organisation(client, engine, sessions, "50.00")
    oid = organisation["id"]
    viewer, alice = await sign_up(client), await sign_up(client)
    await add_member(client, admin["headers"], oid, viewer["email"], "viewer")
    content = _csv(f"{alice['email']},5.00,USD,")
    assert (await upload(client, viewer["headers"], oid, content)).status_code == 403

    reader = await create_key(client, admin["headers"], oid, ["payouts:read"])
    assert (await upload(client, key_headers(reader), oid, content)).status_code == 403
    writer = await create_key(client, admin["headers"], oid, ["payouts:write", "payouts:read"])
    batch = (await upload(client, key_headers(writer), oid, content)).json()
    seen = await client.get(org_path(oid, f"/payouts/{batch['id']}"), headers=key_headers(reader))
    assert seen.status_code == 200 and seen.json()["status"] == "validated"
    paid = await client.post(
        org_path(oid, f"/payouts/{batch['id']}/execute"), headers=key_headers(writer)
    )
    assert paid.status_code == 200 and paid.json()["status"] == "completed"
    # Another organisation's batch id is 404 here.
    _, other = await funded_organisation(client, engine, sessions, "1.00")
    stranger_path = org_path(other["id"], f"/payouts/{batch['id']}")
    assert (await client.get(stranger_path, headers=admin["headers"])).status_code == 404


async def test_files_that_are_not_payout_files_are_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin, organisation = await funded_organisation(client, engine, sessions, "10.00")
    oid = organisation["id"]
    cases: dict[str, Any] = {
        "header": b"email,amount\r\na@example.com,1.00\r\n",
        "encoding": "recipient_email,amount,currency,note\r\nä@x.com,1,USD,\r\n".encode("latin-1"),
        "empty": b"recipient_email,amount,currency,note\r\n",
        "nul": b"recipient_email,amount,currency,note\r\na@x.com,1.00,USD,\x00\r\n",
        "nothing": b"",
    }
    for name, content in cases.items():
        refused = await upload(client, admin["headers"], oid, content)
        assert refused.status_code == 422, name
        assert refused.json()["error"]["code"] == "invalid_payout_file", name
    missing = await client.post(org_path(oid, "/payouts"), headers=admin["headers"])
    assert missing.status_code == 422


async def test_a_resent_upload_makes_one_batch_and_a_repeated_file_is_flagged(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin, organisation = await funded_organisation(client, engine, sessions, "50.00")
    oid = organisation["id"]
    alice = await sign_up(client)
    content = _csv(f"{alice['email']},5.00,USD,")
    headers = {**admin["headers"], "Idempotency-Key": "payroll-2026-11"}
    first = await upload(client, headers, oid, content)
    again = await upload(client, headers, oid, content)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert first.json()["duplicate_of"] is None
    other_file = await upload(client, headers, oid, _csv(f"{alice['email']},6.00,USD,"))
    assert other_file.status_code == 422  # the same key for another file

    # The same file again without a key is a new batch, flagged as a repeat of the first.
    repeat = await upload(client, admin["headers"], oid, content)
    assert repeat.status_code == 201 and repeat.json()["id"] != first.json()["id"]
    assert repeat.json()["duplicate_of"] == first.json()["id"]
    listed = await client.get(org_path(oid, "/payouts"), headers=admin["headers"])
    assert len(listed.json()) == 2


async def test_an_execution_stopped_part_way_resumes_and_pays_each_row_once(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    sessions: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(payout_execution, "CHUNK_ROWS", 1)  # one row per transaction
    admin, organisation = await funded_organisation(client, engine, sessions, "100.00")
    oid = organisation["id"]
    alice, bob, carol = [await customer(client, engine) for _ in range(3)]
    lines = (
        f"{alice['email']},10.00,USD,",
        f"{bob['email']},20.00,USD,",
        f"{carol['email']},30.00,USD,",
    )
    batch = (await upload(client, admin["headers"], oid, _csv(*lines))).json()
    assert batch["status"] == "validated"
    async with engine.begin() as conn:  # bob's account is closed after the upload
        await conn.execute(
            text("UPDATE users SET status = 'closed' WHERE id = :id"), {"id": bob["id"]}
        )
    path = org_path(oid, f"/payouts/{batch['id']}/execute")
    stopped = await client.post(path, headers=admin["headers"])
    assert stopped.status_code == 422, stopped.text
    assert stopped.json()["error"]["details"] == {"line": 3}
    progress = (
        await client.get(org_path(oid, f"/payouts/{batch['id']}"), headers=admin["headers"])
    ).json()
    assert progress["status"] == "validated"
    assert [r["status"] for r in progress["rows"]] == ["completed", "ok", "ok"]

    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET status = 'active' WHERE id = :id"), {"id": bob["id"]}
        )
    resumed = await client.post(path, headers=admin["headers"])
    assert resumed.status_code == 200 and resumed.json()["status"] == "completed"
    assert "Idempotent-Replayed" not in resumed.headers
    assert [r["status"] for r in resumed.json()["rows"]] == ["completed"] * 3
    amounts = [await balance(engine, who["id"]) for who in (alice, bob, carol)]
    assert amounts == [Decimal("10.00"), Decimal("20.00"), Decimal("30.00")]
    assert await treasury_usd(client, admin["headers"], oid) == "40.00"
    await assert_ledger_clean(engine)


async def test_uploads_are_bounded_and_checked_before_they_are_read(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin, organisation = await funded_organisation(client, engine, sessions, "10.00")
    oid = organisation["id"]
    huge = _csv(*[f"someone-{i}@example.com,1.00,USD,{'x' * 400}" for i in range(2600)])
    assert len(huge) > 1_000_000 + 16 * 1024
    too_large = await upload(client, admin["headers"], oid, huge)
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "payload_too_large"
    # Signed out, the body is never looked at: 401, whatever it holds.
    anonymous = await upload(client, {}, oid, huge)
    assert anonymous.status_code == 401
    other_field = await client.post(
        org_path(oid, "/payouts"),
        headers=admin["headers"],
        files={"attachment": ("p.csv", _csv("a@example.com,1.00,USD,"), "text/csv")},
    )
    assert other_field.status_code == 422
    assert other_field.json()["error"]["code"] == "invalid_payout_file"
    as_json = await client.post(org_path(oid, "/payouts"), headers=admin["headers"], json={})
    assert as_json.status_code == 422
