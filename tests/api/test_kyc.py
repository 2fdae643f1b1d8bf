"""KYC over HTTP: the sandbox's approve / reject / review, the user's tier and status, strict
validation with nothing stored on a bad input, one approval per person; and the caller's
limits."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.kit.ids import uuid7, uuid7_time
from tests.api.conftest import sign_in, sign_up

API = "/api/v1"


def submission(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "date_of_birth": "1990-12-10",
        "country": "GB",
        "address": "12 St James's Square, London SW1Y 4JH",
        "document_type": "passport",
        "document_number": "X1234567AB",
    }
    body.update(overrides)
    return body


async def me(client: httpx.AsyncClient, account: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"{API}/me", headers=account["headers"])
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def stored_submissions(engine: AsyncEngine, user_id: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM kyc_submissions WHERE user_id = :u ORDER BY created_at"),
            {"u": uuid.UUID(user_id)},
        )
        return [dict(r._mapping) for r in rows]


async def audit_rows(engine: AsyncEngine, user_id: str, action: str) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM audit_log WHERE actor_id = :u AND action = :a ORDER BY id"),
            {"u": uuid.UUID(user_id), "a": action},
        )
        return [dict(r._mapping) for r in rows]


async def test_a_well_formed_submission_is_approved_at_tier_1(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    account = await sign_up(client)
    response = await client.post(
        f"{API}/kyc/submissions", headers=account["headers"], json=submission()
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "approved" and body["tier"] == 1 and body["reason"] is None
    assert body["document_last4"] == "67AB" and body["country"] == "GB"
    assert uuid.UUID(body["id"]).version == 7

    profile = await me(client, account)
    assert (profile["kyc_tier"], profile["kyc_status"]) == (1, "approved")

    (row,) = await stored_submissions(engine, account["user"]["id"])
    assert row["document_last4"] == "67AB" and row["provider"] == "sandbox"
    assert row["decided_at"] is not None and row["provider_reference"].startswith("sbx_inq_")
    # Neither the whole document number nor the person's details are kept.
    assert "X1234567AB" not in repr(row) and "Lovelace" not in repr(row)

    (decision,) = await audit_rows(engine, account["user"]["id"], "kyc.decision")
    assert decision["outcome"] == "success" and decision["subject_id"] == body["id"]
    assert decision["details"]["status"] == "approved" and decision["details"]["tier"] == 1
    assert "X1234567AB" not in repr(decision)

    listed = await client.get(f"{API}/kyc/submissions", headers=account["headers"])
    assert listed.status_code == 200
    assert [x["id"] for x in listed.json()] == [body["id"]]


async def test_reject_as_last_name_is_rejected_and_may_try_again(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    account = await sign_up(client)
    response = await client.post(
        f"{API}/kyc/submissions", headers=account["headers"], json=submission(last_name="Reject")
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "rejected" and body["tier"] == 0 and body["reason"]
    profile = await me(client, account)
    assert (profile["kyc_tier"], profile["kyc_status"]) == (0, "rejected")
    (decision,) = await audit_rows(engine, account["user"]["id"], "kyc.decision")
    assert decision["outcome"] == "refused" and decision["details"]["status"] == "rejected"

    again = await client.post(
        f"{API}/kyc/submissions", headers=account["headers"], json=submission()
    )
    assert again.status_code == 201 and again.json()["status"] == "approved"
    assert (await me(client, account))["kyc_tier"] == 1
    listed = (await client.get(f"{API}/kyc/submissions", headers=account["headers"])).json()
    assert [x["status"] for x in listed] == ["approved", "rejected"]


async def test_review_as_last_name_leaves_the_user_at_tier_0_pending_review(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    account = await sign_up(client)
    response = await client.post(
        f"{API}/kyc/submissions", headers=account["headers"], json=submission(last_name="Review")
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "pending_review" and body["tier"] == 0
    assert body["decided_at"] is None
    profile = await me(client, account)
    assert (profile["kyc_tier"], profile["kyc_status"]) == (0, "pending_review")
    # While a person reviews it, another submission may not jump the queue.
    again = await client.post(
        f"{API}/kyc/submissions", headers=account["headers"], json=submission()
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "kyc_review_pending"
    assert len(await stored_submissions(engine, account["user"]["id"])) == 1


async def test_an_approved_user_submitting_again_is_409(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    account = await sign_up(client)
    first = await client.post(
        f"{API}/kyc/submissions", headers=account["headers"], json=submission()
    )
    assert first.status_code == 201
    again = await client.post(
        f"{API}/kyc/submissions", headers=account["headers"], json=submission(last_name="Reject")
    )
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "kyc_already_approved" and error["request_id"]
    assert len(await stored_submissions(engine, account["user"]["id"])) == 1
    assert (await me(client, account))["kyc_status"] == "approved"


async def test_two_submissions_at_once_approve_only_one(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    account = await sign_up(client)
    responses = await asyncio.gather(
        *(
            client.post(f"{API}/kyc/submissions", headers=account["headers"], json=submission())
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert [r["status"] for r in await stored_submissions(engine, account["user"]["id"])] == [
        "approved"
    ]
    assert len(await audit_rows(engine, account["user"]["id"], "kyc.decision")) == 1


def _years_ago(years: int, days: int = 0) -> str:
    today = datetime.now(UTC).date()
    try:
        then = today.replace(year=today.year - years)
    except ValueError:  # 29 February
        then = today.replace(year=today.year - years, day=28)
    return (then + timedelta(days=days)).isoformat()


# Dates relative to today are computed when the test runs, not when the module is imported.
BAD_INPUTS: list[tuple[str, dict[str, Any] | Callable[[], dict[str, Any]]]] = [
    ("future birth date", lambda: {"date_of_birth": _years_ago(0, days=1)}),
    ("17 years old", lambda: {"date_of_birth": _years_ago(17)}),
    ("one day short of 18", lambda: {"date_of_birth": _years_ago(18, days=1)}),
    ("implausibly old", {"date_of_birth": "1850-01-01"}),
    ("not a calendar date", {"date_of_birth": "1990-02-30"}),
    ("US date format", {"date_of_birth": "12/10/1990"}),
    ("date with a time", {"date_of_birth": "1990-12-10T00:00:00"}),
    ("date as a number", {"date_of_birth": 19901210}),
    ("unknown country", {"country": "XX"}),
    ("lower-case country", {"country": "gb"}),
    ("alpha-3 country", {"country": "GBR"}),
    ("NUL in address", {"address": "12 St James's Square\x00, London"}),
    ("newline in first name", {"first_name": "Ada\nLovelace"}),
    ("blank last name", {"last_name": "   "}),
    ("overlong first name", {"first_name": "A" * 101}),
    ("overlong address", {"address": "x" * 301}),
    ("unknown document type", {"document_type": "library_card"}),
    ("document number too short", {"document_number": "1234"}),
    ("document number too long", {"document_number": "A" * 21}),
    ("document number with a dash", {"document_number": "X12-3456"}),
    ("document number with non-ASCII digits", {"document_number": "X١٢٣٤٥٦"}),
    ("document number as a number", {"document_number": 12345678}),
    ("privileged field: tier", {"tier": 2}),
    ("privileged field: status", {"status": "approved"}),
    ("privileged field: kyc_tier", {"kyc_tier": 2}),
]


@pytest.mark.parametrize(("case", "change"), BAD_INPUTS, ids=[c for c, _ in BAD_INPUTS])
async def test_bad_inputs_are_422_and_store_nothing(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    case: str,
    change: dict[str, Any] | Callable[[], dict[str, Any]],
) -> None:
    account = await sign_up(client)
    fields = change() if callable(change) else change
    response = await client.post(
        f"{API}/kyc/submissions", headers=account["headers"], json=submission(**fields)
    )
    assert response.status_code == 422, f"{case}: {response.text}"
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["request_id"]
    assert error["details"], case
    assert await stored_submissions(engine, account["user"]["id"]) == []
    profile = await me(client, account)
    assert (profile["kyc_tier"], profile["kyc_status"]) == (0, "none")


async def test_a_missing_field_is_422(client: httpx.AsyncClient) -> None:
    account = await sign_up(client)
    body = submission()
    del body["document_number"]
    response = await client.post(f"{API}/kyc/submissions", headers=account["headers"], json=body)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "document_number"


async def test_text_fields_are_trimmed_and_18_today_is_adult(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    account = await sign_up(client)
    response = await client.post(
        f"{API}/kyc/submissions",
        headers=account["headers"],
        json=submission(
            first_name="  Ada ",
            last_name=" Byron ",
            date_of_birth=_years_ago(18),
            document_number=" ab12345 ",
        ),
    )
    assert response.status_code == 201, response.text
    assert response.json()["document_last4"] == "2345"
    assert len(await stored_submissions(engine, account["user"]["id"])) == 1


async def test_submissions_are_only_the_callers_own(client: httpx.AsyncClient) -> None:
    alice, bob = await sign_up(client), await sign_up(client)
    made = await client.post(f"{API}/kyc/submissions", headers=alice["headers"], json=submission())
    assert made.status_code == 201
    assert (await client.get(f"{API}/kyc/submissions", headers=bob["headers"])).json() == []
    mine = (await client.get(f"{API}/kyc/submissions", headers=alice["headers"])).json()
    assert [x["id"] for x in mine] == [made.json()["id"]]


async def test_kyc_needs_a_signed_in_customer(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    assert (await client.post(f"{API}/kyc/submissions", json=submission())).status_code == 401
    account = await sign_up(client)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = 'support' WHERE email = :e"), {"e": account["email"]}
        )
    support = await sign_in(client, account["email"])
    response = await client.post(
        f"{API}/kyc/submissions", headers=support["headers"], json=submission()
    )
    assert response.status_code == 403
    assert await stored_submissions(engine, account["user"]["id"]) == []


async def test_limits_show_the_tier_and_what_is_left(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    account = await sign_up(client)
    before = await client.get(f"{API}/limits", headers=account["headers"])
    assert before.status_code == 200
    assert before.json() == {
        "tier": 0,
        "kyc_status": "none",
        "currency": "USD",
        "can_move_money": False,
        "limits": {},
    }
    approved = await client.post(
        f"{API}/kyc/submissions", headers=account["headers"], json=submission()
    )
    assert approved.status_code == 201

    # A withdrawal of today, as banking records it.
    tx_id = uuid7()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO transactions (id, created_at, user_id, type, status, domain, asset, amount) VALUES (:id, :at, :u, 'withdrawal', 'completed', 'banking', 'USD', 1250.50)"
            ),
            {"id": tx_id, "at": uuid7_time(tx_id), "u": uuid.UUID(account["user"]["id"])},
        )
    body = (await client.get(f"{API}/limits", headers=account["headers"])).json()
    assert body["tier"] == 1 and body["kyc_status"] == "approved" and body["can_move_money"]
    assert body["limits"]["deposit"] == {
        "daily": {"limit": "10000.00", "used": "0.00", "remaining": "10000.00"},
        "monthly": {"limit": "30000.00", "used": "0.00", "remaining": "30000.00"},
    }
    assert body["limits"]["withdrawal"]["daily"] == {
        "limit": "5000.00",
        "used": "1250.50",
        "remaining": "3749.50",
    }
    assert body["limits"]["withdrawal"]["monthly"]["remaining"] == "13749.50"
    assert body["limits"]["transfer"]["daily"]["limit"] == "5000.00"


async def test_limits_need_banking_read(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    assert (await client.get(f"{API}/limits")).status_code == 401
    account = await sign_up(client)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = 'support' WHERE email = :e"), {"e": account["email"]}
        )
    support = await sign_in(client, account["email"])
    response = await client.get(f"{API}/limits", headers=support["headers"])
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
