"""Manual KYC review: a submission the provider left for review is decided by support or an
admin — approval lifts the user to tier 1, rejection lets them try again; both audited."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import sign_in, sign_up
from tests.api.test_kyc import API, audit_rows, me, submission


async def _with_role(client: httpx.AsyncClient, engine: AsyncEngine, role: str) -> dict[str, Any]:
    account = await sign_up(client)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET role = :r WHERE email = :e"), {"r": role, "e": account["email"]}
        )
    return {**account, **await sign_in(client, account["email"])}


async def _in_review(client: httpx.AsyncClient) -> tuple[dict[str, Any], str]:
    applicant = await sign_up(client)
    sent = await client.post(
        f"{API}/kyc/submissions", headers=applicant["headers"], json=submission(last_name="Review")
    )
    assert sent.status_code == 201 and sent.json()["status"] == "pending_review"
    return applicant, sent.json()["id"]


@pytest.mark.parametrize(
    ("decision", "status", "tier"), [("approve", "approved", 1), ("reject", "rejected", 0)]
)
async def test_a_reviewer_decides_a_pending_submission(
    client: httpx.AsyncClient, engine: AsyncEngine, decision: str, status: str, tier: int
) -> None:
    reviewer = await _with_role(client, engine, "support")
    applicant, submission_id = await _in_review(client)

    waiting = (await client.get(f"{API}/admin/kyc/reviews", headers=reviewer["headers"])).json()
    assert submission_id in {s["id"] for s in waiting}

    decided = await client.post(
        f"{API}/admin/kyc/reviews/{submission_id}",
        headers=reviewer["headers"],
        json={"decision": decision, "reason": "documents checked by hand"},
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == status
    profile = await me(client, applicant)
    assert (profile["kyc_status"], profile["kyc_tier"]) == (status, tier)
    rows = await audit_rows(engine, reviewer["user"]["id"], "kyc.review_decision")
    assert len(rows) == 1 and rows[0]["details"]["status"] == status
    # Decided once: a second decision finds nothing waiting.
    again = await client.post(
        f"{API}/admin/kyc/reviews/{submission_id}",
        headers=reviewer["headers"],
        json={"decision": "approve"},
    )
    assert again.status_code == 404
    if decision == "reject":  # a rejected applicant may submit again
        retry = await client.post(
            f"{API}/kyc/submissions", headers=applicant["headers"], json=submission()
        )
        assert retry.status_code == 201 and retry.json()["status"] == "approved"


async def test_customers_cannot_review_and_bad_decisions_are_422(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    applicant, submission_id = await _in_review(client)
    path = f"{API}/admin/kyc/reviews/{submission_id}"
    assert (
        await client.post(path, headers=applicant["headers"], json={"decision": "approve"})
    ).status_code == 403
    assert (
        await client.get(f"{API}/admin/kyc/reviews", headers=applicant["headers"])
    ).status_code == 403
    admin = await _with_role(client, engine, "admin")
    for bad in (
        {"decision": "maybe"},
        {},
        {"decision": "approve", "tier": 2},
        {"decision": "approve", "reason": "a\x00b"},
    ):
        assert (await client.post(path, headers=admin["headers"], json=bad)).status_code == 422
    assert (await me(client, applicant))["kyc_status"] == "pending_review"
