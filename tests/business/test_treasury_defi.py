"""The treasury's DeFi over HTTP, on the sandbox vault: an admin invests treasury money, the
deposit goes to the vault in a batch with a user's, the position earns yield, and the admin
withdraws it back to the treasury — balances, positions, the treasury's answer, the audit log
and the ledger checked at each step. Viewers, keys and bad requests are refused and move
nothing."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
from eth_account import Account
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from diboas.defi.service import batches, valuation
from tests.api.conftest import Mailbox, mailbox  # noqa: F401 - the SMTP sink fixture
from tests.banking.helpers import customer, fund
from tests.business.helpers import (
    add_member,
    create_key,
    funded_organisation,
    key_headers,
    org_path,
)
from tests.defi.helpers import (
    POSITIONS,
    Clock,
    CountingVault,
    defi_client,
    services,
    settled,
    vaults,
)
from tests.orchestration.conftest import assert_ledger_clean

DEFI = "/treasury/defi"


async def org_balance(
    engine: AsyncEngine, organisation_id: str, domain: str, asset: str, kind: str = "available"
) -> Decimal:
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                text("""SELECT b.balance FROM balances b JOIN accounts a ON a.id = b.account_id
                         WHERE a.owner_type = 'organisation' AND a.owner_id = :id
                           AND a.domain = :domain AND a.asset = :asset AND a.kind = :kind"""),
                {"id": uuid.UUID(organisation_id), "domain": domain, "asset": asset, "kind": kind},
            )
        ).scalar()
    return Decimal(0) if value is None else Decimal(value)


async def org_position_count(engine: AsyncEngine, organisation_id: str) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text("SELECT count(*) FROM defi_positions WHERE organisation_id = :id"),
                    {"id": uuid.UUID(organisation_id)},
                )
            ).scalar_one()
        )


async def audit_actions(
    client: httpx.AsyncClient, headers: dict[str, str], organisation_id: str
) -> list[str]:
    response = await client.get(org_path(organisation_id, "/audit-log?limit=100"), headers=headers)
    assert response.status_code == 200, response.text
    return [row["action"] for row in response.json()["items"]]


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def test_invest_batch_earn_and_withdraw_back_to_the_treasury(
    database_url: URL,
    mailbox: tuple[Mailbox, int],  # noqa: F811 - the fixture of that name
    engine: AsyncEngine,
    sessions: SessionFactory,
) -> None:
    clock = Clock()
    core = CountingVault(apy=Decimal(0), clock=clock)
    await core.deposit(Account.create(), Decimal("1000"))  # someone else is in the vault
    core.deposits.clear()
    # A long batch window: the deposits wait for the batch the test runs.
    async with defi_client(
        database_url, mailbox[1], services(vaults(core, clock)), defi_batch_window_seconds=3600
    ) as (client, app):
        admin, organisation = await funded_organisation(client, engine, sessions, "1000.00")
        oid, headers = organisation["id"], admin["headers"]

        invested = await client.post(
            org_path(oid, f"{DEFI}/positions"),
            headers=keyed(headers, "treasury-invest-1"),
            json={"strategy_id": "usdc-core", "amount": "300.00"},
        )
        assert invested.status_code == 201, invested.text
        movement = invested.json()
        # 0.5 % platform fee and the gas of a whole deposit transaction held (0.61).
        assert movement["fee_breakdown"] == {
            "platform": "1.50",
            "provider": "0.00",
            "network": "0.61",
        }
        assert movement["status"] == "pending" and movement["strategy_id"] == "usdc-core"
        again = await client.post(
            org_path(oid, f"{DEFI}/positions"),
            headers=keyed(headers, "treasury-invest-1"),
            json={"strategy_id": "usdc-core", "amount": "300.00"},
        )
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == movement["id"]
        assert await org_balance(engine, oid, "banking", "USD") == Decimal("697.89")
        assert await org_balance(engine, oid, "banking", "USD", "held") == Decimal("302.11")

        # A user's own investment joins the same batch; the admin's own balance is untouched.
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "500.00")
        personal = await client.post(
            POSITIONS, headers=ada["headers"], json={"strategy_id": "usdc-core", "amount": "100.00"}
        )
        assert personal.status_code == 201, personal.text
        batch_id = await batches.run_batch(
            sessions, app.state.services, app.state.settings, "usdc-core"
        )
        assert batch_id is not None
        assert core.deposits == [Decimal("400.000000")]  # one vault transaction for both owners

        done = await settled(client, headers, movement["id"])
        assert done["status"] == "completed", done
        async with engine.connect() as conn:
            tagged = (
                await conn.execute(
                    text("SELECT metadata->>'organisation_id' FROM transactions WHERE id = :id"),
                    {"id": uuid.UUID(movement["id"])},
                )
            ).scalar_one()
        assert tagged == oid  # the admin's transaction row names the organisation's money
        # Every reader of the treasury follows it (an API key too); not a user's own movement.
        reader = key_headers(await create_key(client, headers, oid, ["treasury:read"]))
        polled = await client.get(
            org_path(oid, f"{DEFI}/transactions/{movement['id']}"), headers=reader
        )
        assert polled.status_code == 200, polled.text
        assert polled.json()["status"] == "completed" and polled.json()["fee"] == "1.81"
        assert [s["state"] for s in polled.json()["steps"]][-1] == "settled"
        theirs = await client.get(
            org_path(oid, f"{DEFI}/transactions/{personal.json()['id']}"), headers=reader
        )
        assert theirs.status_code == 404
        # Gas actually paid (0.61) split between the two deposits, each rounded up: 0.31.
        assert done["fee"] == "1.81"
        assert await org_balance(engine, oid, "banking", "USD") == Decimal("698.19")
        assert await org_balance(engine, oid, "banking", "USD", "held") == 0
        assert await org_balance(engine, oid, "defi", "USDC") == Decimal("300.000000")

        listed = await client.get(org_path(oid, f"{DEFI}/positions"), headers=headers)
        assert listed.status_code == 200, listed.text
        [position] = listed.json()["items"]
        assert position["status"] == "open" and position["principal"] == "300.000000"
        assert listed.json()["totals"]["value_usd"] == "300.00"
        mine = (await client.get(POSITIONS, headers=headers)).json()
        assert mine["items"] == []  # the admin's own positions: none

        # Yield: 40 USDC arrive in the vault (1,400 in it): the organisation's share grows.
        core.donate(Decimal("40"))
        assert await valuation.accrue(sessions, app.state.services, app.state.settings) >= 2
        treasury = (await client.get(org_path(oid, "/treasury"), headers=headers)).json()
        earned = Decimal(treasury["defi"]["accrued_yield_usd"])
        assert Decimal("8.50") < earned < Decimal("8.60")  # 300/1400 of 40 = 8.57
        assert treasury["defi"]["principal_usd"] == "300.00"
        assert Decimal(treasury["defi"]["value_usd"]) == Decimal("300.00") + earned
        assert treasury["defi"]["live_positions"] == 1
        # The ledger books the yield: the treasury's defi domain is the position's value.
        assert Decimal(treasury["domains"]["defi"]["total_usd"]) == Decimal("300.00") + earned
        assert treasury["domains"]["banking"]["total_usd"] == "698.19"
        [position] = (await client.get(org_path(oid, f"{DEFI}/positions"), headers=headers)).json()[
            "items"
        ]
        value = Decimal(position["value"])
        assert await org_balance(engine, oid, "defi", "USDC") == value

        # Withdraw everything back to the treasury.
        out = await client.post(
            org_path(oid, f"{DEFI}/positions/{position['id']}/withdraw"),
            headers=keyed(headers, "treasury-withdraw-1"),
        )
        assert out.status_code == 201, out.text
        withdrawn = await settled(client, headers, out.json()["id"])
        assert withdrawn["status"] == "completed", withdrawn
        received = Decimal(withdrawn["amount"])  # what the vault paid, to the cent
        assert value - Decimal("0.01") <= received <= value
        expected = Decimal("698.19") + received - Decimal(withdrawn["fee"])
        assert await org_balance(engine, oid, "banking", "USD") == expected
        assert await org_balance(engine, oid, "defi", "USDC") == 0
        closed = (await client.get(org_path(oid, f"{DEFI}/positions"), headers=headers)).json()
        assert closed["items"][0]["status"] == "closed"
        assert closed["totals"] == {
            "value_usd": "0.00",
            "principal_usd": "0.00",
            "accrued_yield_usd": "0.00",
            "live_positions": 0,
        }
        treasury = (await client.get(org_path(oid, "/treasury"), headers=headers)).json()
        assert Decimal(treasury["domains"]["banking"]["total_usd"]) == expected

        actions = await audit_actions(client, headers, oid)
        for action in (
            "business.treasury_defi_invested",
            "business.treasury_defi_invest_completed",
            "business.treasury_defi_withdrawal_requested",
            "business.treasury_defi_withdrawal_completed",
        ):
            assert actions.count(action) == 1, (action, actions)
        await assert_ledger_clean(engine)


async def test_roles_scopes_and_bad_requests_move_nothing(
    database_url: URL,
    mailbox: tuple[Mailbox, int],  # noqa: F811 - the fixture of that name
    engine: AsyncEngine,
    sessions: SessionFactory,
) -> None:
    async with defi_client(
        database_url, mailbox[1], services(), defi_batch_window_seconds=3600
    ) as (client, _app):
        admin, organisation = await funded_organisation(client, engine, sessions, "500.00")
        oid, headers = organisation["id"], admin["headers"]
        viewer = await customer(client, engine)
        member = await customer(client, engine)
        assert (
            await add_member(client, headers, oid, viewer["email"], "viewer")
        ).status_code == 201
        assert (
            await add_member(client, headers, oid, member["email"], "member")
        ).status_code == 201
        reader_key = await create_key(client, headers, oid, ["treasury:read"])
        payouts_key = await create_key(client, headers, oid, ["payouts:read"])
        invest_path = org_path(oid, f"{DEFI}/positions")
        good = {"strategy_id": "usdc-core", "amount": "50.00"}

        refusals: list[tuple[dict[str, str], Any, int, str]] = [
            (keyed(viewer["headers"], "v1"), good, 403, "organisation_role_required"),
            (keyed(member["headers"], "m1"), good, 403, "organisation_role_required"),
            (keyed(key_headers(reader_key), "k1"), good, 403, "user_required"),
            (headers, good, 400, "idempotency_key_required"),
            (keyed(headers, "b1"), {"strategy_id": "usdc-core", "amount": 50}, 422, ""),
            (keyed(headers, "b2"), {"strategy_id": "usdc-core", "amount": "1e2"}, 422, ""),
            (keyed(headers, "b3"), {"strategy_id": "usdc-core", "amount": "-5.00"}, 422, ""),
            (keyed(headers, "b4"), {"strategy_id": "usdc-core", "amount": "50.001"}, 422, ""),
            (keyed(headers, "b5"), {**good, "user_id": str(admin["id"])}, 422, ""),
            (
                keyed(headers, "b6"),
                {"strategy_id": "usdc-core", "amount": "5.00"},
                422,
                "amount_below_minimum",
            ),
            (
                keyed(headers, "b7"),
                {"strategy_id": "no-such", "amount": "50.00"},
                404,
                "strategy_not_found",
            ),
            (
                keyed(headers, "b8"),
                {"strategy_id": "usdc-core", "amount": "499.00"},
                422,
                "insufficient_funds",
            ),
            (
                keyed(headers, "b9"),
                {"strategy_id": "usdc-growth", "amount": "150.00"},
                422,
                "risk_acknowledgement_required",
            ),
        ]
        for request_headers, body, status, code in refusals:
            response = await client.post(invest_path, headers=request_headers, json=body)
            assert response.status_code == status, (body, response.text)
            if code:
                assert response.json()["error"]["code"] == code, response.text
        assert await org_balance(engine, oid, "banking", "USD") == Decimal("500.00")
        assert await org_balance(engine, oid, "banking", "USD", "held") == 0
        assert await org_position_count(engine, oid) == 0

        # Reading: a viewer and a treasury:read key may; a key without the scope may not.
        for reader in (viewer["headers"], key_headers(reader_key)):
            listed = await client.get(invest_path, headers=reader)
            assert listed.status_code == 200 and listed.json()["items"] == [], listed.text
            profile = await client.get(org_path(oid, f"{DEFI}/risk-profile"), headers=reader)
            assert profile.json() == {"max_risk_score": 2, "source": "default"}
        refused = await client.get(invest_path, headers=key_headers(payouts_key))
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "insufficient_scope"
        assert (await client.get(invest_path)).status_code == 401

        # Acknowledged, the riskier strategy is accepted (and the acknowledgement recorded).
        acknowledged = await client.post(
            invest_path,
            headers=keyed(headers, "ack-1"),
            json={"strategy_id": "usdc-growth", "amount": "100.00", "acknowledge_risk": True},
        )
        assert acknowledged.status_code == 201, acknowledged.text
        assert await org_balance(engine, oid, "banking", "USD") == Decimal("398.89")

        # The risk profile: only an admin sets it; then the riskier strategy needs no
        # acknowledgement.
        put = org_path(oid, f"{DEFI}/risk-profile")
        assert (
            await client.put(put, headers=viewer["headers"], json={"max_risk_score": 4})
        ).status_code == 403
        assert (
            await client.put(put, headers=key_headers(reader_key), json={"max_risk_score": 4})
        ).status_code == 403
        assert (
            await client.put(put, headers=headers, json={"max_risk_score": 6})
        ).status_code == 422
        set_profile = await client.put(put, headers=headers, json={"max_risk_score": 4})
        assert set_profile.json() == {"max_risk_score": 4, "source": "set"}
        growth = await client.post(
            invest_path,
            headers=keyed(headers, "growth-1"),
            json={"strategy_id": "usdc-growth", "amount": "150.00"},
        )
        assert growth.status_code == 201, growth.text
        assert await org_position_count(engine, oid) == 2

        # Another organisation's admin sees none of it.
        other_admin, other = await funded_organisation(client, engine, sessions, "100.00")
        position_id = growth.json()["position_id"]
        assert (
            await client.get(
                org_path(other["id"], f"{DEFI}/positions/{position_id}"),
                headers=other_admin["headers"],
            )
        ).status_code == 404
        stolen = await client.post(
            org_path(other["id"], f"{DEFI}/positions/{position_id}/withdraw"),
            headers=keyed(other_admin["headers"], "steal-1"),
        )
        assert stolen.status_code == 404
        assert (
            await client.get(
                org_path(oid, f"{DEFI}/positions/{position_id}"), headers=other_admin["headers"]
            )
        ).status_code == 404
        assert (
            await client.get(
                org_path(other["id"], f"{DEFI}/transactions/{growth.json()['id']}"),
                headers=other_admin["headers"],
            )
        ).status_code == 404
        seen = await client.get(
            org_path(oid, f"{DEFI}/transactions/{growth.json()['id']}"), headers=viewer["headers"]
        )
        assert seen.status_code == 200 and seen.json()["type"] == "defi_deposit", seen.text
        # Nor does the admin's own consumer API (the position is the organisation's).
        assert (await client.get(f"{POSITIONS}/{position_id}", headers=headers)).status_code == 404

        # Withdrawing a position not yet in the vault is a conflict, and moves nothing.
        early = await client.post(
            org_path(oid, f"{DEFI}/positions/{position_id}/withdraw"),
            headers=keyed(headers, "early-1"),
        )
        assert early.status_code == 409, early.text
        withdraw_path = org_path(oid, f"{DEFI}/positions/{position_id}/withdraw")
        as_viewer = await client.post(withdraw_path, headers=keyed(viewer["headers"], "vw-1"))
        assert as_viewer.status_code == 403
        as_key = await client.post(withdraw_path, headers=keyed(key_headers(reader_key), "kw-1"))
        assert as_key.status_code == 403
        unkeyed = await client.post(withdraw_path, headers=headers)
        assert unkeyed.json()["error"]["code"] == "idempotency_key_required"
        garbled = await client.post(
            withdraw_path, headers=keyed(headers, "gw-1"), json={"amount": "ten"}
        )
        assert garbled.status_code == 422
        assert await org_balance(engine, oid, "banking", "USD") == Decimal("398.89") - Decimal(
            growth.json()["amount"]
        ) - Decimal(growth.json()["fee"])

        actions = await audit_actions(client, headers, oid)
        assert "business.treasury_defi_risk_refused" in actions
        assert actions.count("business.treasury_defi_risk_acknowledged") == 1
        assert "business.treasury_defi_risk_profile" in actions
        assert "business.treasury_defi_invested" in actions
        await assert_ledger_clean(engine)
