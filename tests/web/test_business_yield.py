"""The treasury's yield page: an admin invests treasury money into a strategy and withdraws
it back from the page (the API's rules: roles, risk profile, once per form), everyone who may
read the treasury sees the positions and their value."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.db.engine import SessionFactory
from tests.orchestration.conftest import assert_ledger_clean
from tests.web.helpers import hidden_fields, post_form
from tests.web.test_business_pages import (
    add_member,
    browser,
    create_org,
    fund_treasury,
    verified_user,
)


async def _treasury(engine: AsyncEngine, oid: str) -> Decimal:
    """The treasury's available USD (once it invested, the organisation has DeFi accounts too)."""
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                text("""SELECT b.balance FROM balances b JOIN accounts a ON a.id = b.account_id
                         WHERE a.owner_type = 'organisation' AND a.owner_id = :id
                           AND a.kind = 'available' AND a.domain = 'banking'
                           AND a.asset = 'USD'"""),
                {"id": uuid.UUID(oid)},
            )
        ).scalar_one()
    return Decimal(value)


async def _positions(engine: AsyncEngine, oid: str) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT status FROM defi_positions WHERE organisation_id = :id"),
            {"id": uuid.UUID(oid)},
        )
        return [row.status for row in rows]


async def _until(engine: AsyncEngine, oid: str, wanted: str) -> None:
    # The in-process worker batches the deposit into the sandbox vault (or redeems it).
    for _ in range(150):
        if await _positions(engine, oid) == [wanted]:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the position never became {wanted}: {await _positions(engine, oid)}")


async def _org_with_treasury(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> str:
    await verified_user(client, engine, sessions, money="1000.00")
    oid = await create_org(client)
    assert (await fund_treasury(client, oid, "500.00")).status_code == 303
    return oid


async def test_an_admin_invests_treasury_money_once_and_withdraws_it_back(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    oid = await _org_with_treasury(client, engine, sessions)
    page = f"/business/orgs/{oid}/yield"
    empty = await client.get(page)
    assert empty.status_code == 200
    assert "The treasury holds no DeFi positions." in empty.text

    form = hidden_fields(empty.text)
    data = {**form, "strategy_id": "usdc-core", "amount": "100.00"}
    invested = await client.post(f"{page}/positions", data=data)
    assert invested.status_code == 303, invested.text
    assert invested.headers["location"] == f"{page}?done=invested"
    spent = Decimal("500.00") - await _treasury(engine, oid)
    assert spent > Decimal("100.00")  # the amount, its fee and the estimated gas
    again = await client.post(f"{page}/positions", data=data)  # the same form sent twice
    assert again.status_code == 303
    assert Decimal("500.00") - await _treasury(engine, oid) == spent
    assert len(await _positions(engine, oid)) == 1

    await _until(engine, oid, "open")
    # The admin's own history lists the movement they made, saying whose money it moved.
    mine = await client.get("/app/transactions?type=defi_deposit")
    assert mine.text.count("for an organisation's treasury") == 1
    assert f'href="/business/orgs/{oid}/yield"' in mine.text
    shown = await client.get(page)
    assert "USDC Core Vault" in shown.text and 'data-testid="position-row"' in shown.text
    overview = await client.get(f"/business/orgs/{oid}")
    assert 'data-testid="treasury-defi-value"' in overview.text
    assert "$100.00" in overview.text  # the position's value at the vault now
    # The treasury's movements read as words, not the ledger's entry kinds.
    assert "Invested in a DeFi strategy" in overview.text and "defi.deposit" not in overview.text

    withdraw = await post_form(
        client,
        f"{page}/positions/{(await _position_id(engine, oid))}/withdraw",
        {},
        form_page=page,
    )
    assert withdraw.status_code == 303, withdraw.text
    await _until(engine, oid, "closed")
    assert await _treasury(engine, oid) > Decimal("500.00") - spent  # the money came back
    await assert_ledger_clean(engine)


async def _position_id(engine: AsyncEngine, oid: str) -> uuid.UUID:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT id FROM defi_positions WHERE organisation_id = :id"),
            {"id": uuid.UUID(oid)},
        )
        return uuid.UUID(str(found.scalar_one()))


async def test_a_viewer_sees_the_yield_but_cannot_invest(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    oid = await _org_with_treasury(client, engine, sessions)
    page = f"/business/orgs/{oid}/yield"
    async with browser(client) as viewer:
        email, _ = await verified_user(viewer, engine, sessions, name="Vera Viewer")
        await add_member(client, oid, email, "viewer")
        seen = await viewer.get(page)
        assert seen.status_code == 200
        assert "Invest treasury money" not in seen.text
        fields = hidden_fields(seen.text)  # the sign-out form's CSRF token
        refused = await viewer.post(
            f"{page}/positions", data={**fields, "strategy_id": "usdc-core", "amount": "100.00"}
        )
        assert refused.status_code == 403
        assert "Not available to your role" in refused.text
    assert await _treasury(engine, oid) == Decimal("500.00")
    assert await _positions(engine, oid) == []


async def test_a_strategy_above_the_risk_profile_needs_an_acknowledgement(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    oid = await _org_with_treasury(client, engine, sessions)
    page = f"/business/orgs/{oid}/yield"
    refused = await post_form(
        client,
        f"{page}/positions",
        {"strategy_id": "usdc-growth", "amount": "150.00"},
        form_page=page,
    )
    assert 400 <= refused.status_code < 500
    assert "risk" in refused.text
    assert await _positions(engine, oid) == []
    bad = await post_form(
        client, f"{page}/positions", {"strategy_id": "usdc-core", "amount": "1e3"}, form_page=page
    )
    assert bad.status_code == 422
    assert await _treasury(engine, oid) == Decimal("500.00")
