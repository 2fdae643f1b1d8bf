"""Business exports over HTTP: the treasury's movements and the organisation's audit log as
CSV (escaped, formula-safe), and the audit log as JSON."""

from __future__ import annotations

import csv
import io

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from tests.api.conftest import sign_up
from tests.business.helpers import (
    add_member,
    create_key,
    funded_organisation,
    key_headers,
    org_path,
)


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.text)))


async def test_movements_export_is_csv_and_formula_safe(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin, organisation = await funded_organisation(client, engine, sessions, "200.00")
    oid = organisation["id"]
    alice = await sign_up(client)
    hostile = '=HYPERLINK("http://evil.example","click"), then "quotes"'
    content = (
        "recipient_email,amount,currency,note\r\n"
        f'{alice["email"]},25.00,USD,"{hostile.replace(chr(34), chr(34) * 2)}"\r\n'
        f"{alice['email']},5.00,USD,@SUM(A1)\r\n"
    ).encode()
    batch = await client.post(
        org_path(oid, "/payouts"),
        headers=admin["headers"],
        files={"file": ("p.csv", content, "text/csv")},
    )
    assert batch.json()["status"] == "validated", batch.text
    paid = await client.post(
        org_path(oid, f"/payouts/{batch.json()['id']}/execute"), headers=admin["headers"]
    )
    assert paid.status_code == 200

    export = await client.get(org_path(oid, "/exports/movements.csv"), headers=admin["headers"])
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = _rows(export)
    assert [(r["type"], r["direction"], r["amount"], r["balance_after"]) for r in rows] == [
        ("business.funding", "credit", "200.00", "200.00"),
        ("business.payout", "debit", "25.00", "175.00"),
        ("business.payout", "debit", "5.00", "170.00"),
    ]
    assert rows[0]["counterparty_email"] == admin["email"]
    assert rows[1]["counterparty_email"] == alice["email"]
    # The note comes back whole, quoted where it must be, and defused as a formula.
    assert rows[1]["note"] == "'" + hostile
    assert rows[2]["note"] == "'@SUM(A1)"
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row.values())

    # The same movements as JSON pages, newest first, for the pages; a key reads them too.
    reader = await create_key(client, admin["headers"], oid, ["transactions:read"])
    first = await client.get(
        org_path(oid, "/movements"), headers=key_headers(reader), params={"limit": 2}
    )
    assert first.status_code == 200, first.text
    assert [(m["type"], m["amount"]) for m in first.json()["items"]] == [
        ("business.payout", "5.00"),
        ("business.payout", "25.00"),
    ]
    rest = await client.get(
        org_path(oid, "/movements"),
        headers=key_headers(reader),
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
    )
    assert [m["direction"] for m in rest.json()["items"]] == ["credit"]
    assert rest.json()["next_cursor"] is None
    for cursor in ("garbage", "W10=", "WyJ4IiwxLDJd"):
        bad = await client.get(
            org_path(oid, "/movements"), headers=admin["headers"], params={"cursor": cursor}
        )
        assert bad.status_code == 422, cursor

    # A period with nothing in it is just the header.
    empty = await client.get(
        org_path(oid, "/exports/movements.csv"),
        headers=admin["headers"],
        params={"until": "2000-01-01T00:00:00Z"},
    )
    assert empty.status_code == 200 and _rows(empty) == []


async def test_the_audit_log_records_organisation_actions(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    admin, organisation = await funded_organisation(client, engine, sessions, "10.00")
    oid = organisation["id"]
    viewer = await sign_up(client)
    await add_member(client, admin["headers"], oid, viewer["email"], "viewer")
    key = await create_key(client, admin["headers"], oid, ["audit:read"])
    await client.delete(org_path(oid, f"/api-keys/{key['id']}"), headers=admin["headers"])
    key = await create_key(client, admin["headers"], oid, ["audit:read"])
    await client.post(
        org_path(oid, "/ip-allowlist"), headers=admin["headers"], json={"cidr": "192.0.2.0/24"}
    )

    log = await client.get(org_path(oid, "/audit-log"), headers=admin["headers"])
    assert log.status_code == 200
    actions = [item["action"] for item in log.json()["items"]]
    assert actions == [
        "business.allowlist_added",
        "business.api_key_created",
        "business.api_key_revoked",
        "business.api_key_created",
        "business.member_added",
        "business.treasury_funded",
        "business.organisation_created",
    ]
    newest = log.json()["items"][0]
    assert newest["actor_email"] == admin["email"] and newest["actor_role"] == "org_admin"
    assert newest["details"]["cidr"] == "192.0.2.0/24"
    # No secret in the audit trail.
    assert key["key"] not in log.text

    page = await client.get(
        org_path(oid, "/audit-log"), headers=admin["headers"], params={"limit": 3}
    )
    assert len(page.json()["items"]) == 3
    rest = await client.get(
        org_path(oid, "/audit-log"),
        headers=admin["headers"],
        params={"limit": 50, "before": page.json()["next_before"]},
    )
    assert [i["action"] for i in rest.json()["items"]] == actions[3:]

    # Viewers do not read the audit log; a key with audit:read does.
    assert (
        await client.get(org_path(oid, "/audit-log"), headers=viewer["headers"])
    ).status_code == 403
    exported = await client.get(org_path(oid, "/exports/audit-log.csv"), headers=key_headers(key))
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert [r["action"] for r in _rows(exported)] == actions
