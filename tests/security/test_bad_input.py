"""Every bad input gets a clear 4xx in the one error format, and changes nothing.

For each money-moving (and money-adjacent) endpoint, a valid body is mutated field by field:
amounts that are negative, zero, too precise, in exponent notation, JSON numbers, NaN, huge;
unknown currencies; wrong types; missing and unknown fields; injection strings and control
characters in every structured text field; bodies that are not JSON objects. After each
request the users' ledger postings, transactions, quotes, bank accounts and KYC records are
exactly as before.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.ledger import service
from diboas.ledger.models import AccountKind, Domain, OwnerType
from tests.api.conftest import STRONG_PASSWORD, new_email, sign_up

API = "/api/v1"

BAD_AMOUNTS: list[Any] = [
    "-1",
    "-0.01",
    "0",
    "0.00",
    "0.001",
    "1e3",
    "1E2",
    "1e-2",
    10.5,
    10,
    0,
    -5,
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    "9" * 30,
    "",
    " ",
    None,
    True,
    [],
    {},
    "10,00",
    "0x10",
    "１０",
    "10.0.0",
    "+-1",
    "1 000",
    ".5",
]
INJECTIONS = [
    "'; DROP TABLE users; --",
    '" OR "1"="1',
    "<script>alert(1)</script>",
    "{{7*7}}",
    "${jndi:ldap://x/a}",
    "../../etc/passwd",
    "a\x00b",
    "\x1b[31mred",
    "x" * 5000,
]
WRONG_TYPES: list[Any] = [123, 1.5, True, [], {"$ne": None}, None]


@dataclass
class Endpoint:
    """A route, a body it accepts, and how its fields may be broken."""

    path: str
    body: dict[str, Any]
    amounts: list[str] = field(default_factory=list)
    structured: list[str] = field(
        default_factory=list
    )  # fields with a format: any injection is refused
    required: list[str] = field(default_factory=list)
    headers_of: str = "alice"


@dataclass
class World:
    client: httpx.AsyncClient
    headers: dict[str, dict[str, str]]
    user_ids: list[str]
    bank_account_id: str
    bob_email: str


@pytest.fixture
async def world(client: httpx.AsyncClient, sessions: SessionFactory) -> World:
    alice, bob, carol = await sign_up(client), await sign_up(client), await sign_up(client)

    async def approve_and_fund(session: AsyncSession) -> None:
        for account in (alice, bob):
            await session.execute(
                text("UPDATE users SET kyc_tier = 1, kyc_status = 'approved' WHERE id = :id"),
                {"id": account["user"]["id"]},
            )
        wallet = await service.customer_account(
            session,
            owner_type=OwnerType.USER,
            owner_id=uuid.UUID(alice["user"]["id"]),
            domain=Domain.BANKING,
            asset="USD",
        )
        external = await service.platform_account(session, asset="USD", kind=AccountKind.EXTERNAL)
        await service.transfer(
            session, source=external, destination=wallet, amount=Decimal("1000.00")
        )

    await run_in_transaction(sessions, approve_and_fund)
    bank = await client.post(
        f"{API}/banking/bank-accounts",
        headers=alice["headers"],
        json={
            "holder_name": "Alice",
            "bank_name": "First Bank",
            "routing_number": "011000015",
            "account_number": "000123456789",
        },
    )
    assert bank.status_code == 201, bank.text
    return World(
        client=client,
        headers={"alice": alice["headers"], "carol": carol["headers"]},
        user_ids=[alice["user"]["id"], bob["user"]["id"], carol["user"]["id"]],
        bank_account_id=bank.json()["id"],
        bob_email=bob["email"],
    )


def _endpoints(world: World) -> list[Endpoint]:
    return [
        Endpoint(
            "/banking/deposits",
            {"amount": "10.00", "currency": "USD", "method": "card"},
            amounts=["amount"],
            structured=["currency", "method", "payment_method", "quote_id", "bank_account_id"],
            required=["amount", "currency"],
        ),
        Endpoint(
            "/banking/withdrawals",
            {"amount": "10.00", "currency": "USD", "bank_account_id": world.bank_account_id},
            amounts=["amount"],
            structured=["currency", "bank_account_id", "quote_id"],
            required=["amount", "currency", "bank_account_id"],
        ),
        Endpoint(
            "/banking/transfers",
            {"recipient_email": world.bob_email, "amount": "10.00", "currency": "USD"},
            amounts=["amount"],
            structured=["recipient_email", "currency", "quote_id"],
            required=["recipient_email", "amount", "currency"],
        ),
        Endpoint(
            "/fees/quote",
            {"operation": "deposit", "amount": "10.00", "currency": "USD"},
            amounts=["amount"],
            structured=["operation", "currency", "method"],
            required=["operation", "amount"],
        ),
        Endpoint(
            "/banking/bank-accounts",
            {
                "holder_name": "Alice",
                "bank_name": "Second Bank",
                "routing_number": "011000015",
                "account_number": "99887766",
            },
            structured=["routing_number", "account_number"],
            required=["holder_name", "bank_name", "routing_number", "account_number"],
        ),
        Endpoint(
            "/kyc/submissions",
            {
                "first_name": "Carol",
                "last_name": "Smith",
                "date_of_birth": "1985-01-31",
                "country": "US",
                "address": "1 Main St",
                "document_type": "passport",
                "document_number": "X1234567",
            },
            structured=["date_of_birth", "country", "document_type", "document_number"],
            required=[
                "first_name",
                "last_name",
                "date_of_birth",
                "country",
                "address",
                "document_type",
                "document_number",
            ],
            headers_of="carol",
        ),
    ]


def _cases(world: World) -> list[tuple[str, Endpoint, Any]]:
    cases: list[tuple[str, Endpoint, Any]] = []
    for ep in _endpoints(world):
        for name in ep.amounts:
            cases += [
                (f"{ep.path} {name}={bad!r}"[:120], ep, {**ep.body, name: bad})
                for bad in BAD_AMOUNTS
            ]
        for name in ep.structured:
            cases += [
                (f"{ep.path} {name}={bad!r}"[:120], ep, {**ep.body, name: bad})
                for bad in INJECTIONS
            ]
            cases += [
                (f"{ep.path} {name} as {type(bad).__name__}", ep, {**ep.body, name: bad})
                for bad in WRONG_TYPES[:5]
            ]
        for name in ep.required:
            cases.append(
                (f"{ep.path} without {name}", ep, {k: v for k, v in ep.body.items() if k != name})
            )
        for extra in (
            {"status": "completed"},
            {"fee": "0"},
            {"user_id": world.user_ids[1]},
            {"role": "admin"},
        ):
            cases.append((f"{ep.path} with {extra}", ep, {**ep.body, **extra}))
        cases += [
            (f"{ep.path} body {shape!r}"[:80], ep, shape)
            for shape in ([], "text", 42, None, [ep.body])
        ]
    cases += [
        (
            "/banking/deposits currency XYZ",
            _endpoints(world)[0],
            {**_endpoints(world)[0].body, "currency": "XYZ"},
        ),
        (
            "/banking/transfers to self-unknown",
            _endpoints(world)[2],
            {**_endpoints(world)[2].body, "recipient_email": new_email()},
        ),
        (
            "/banking/transfers over balance",
            _endpoints(world)[2],
            {**_endpoints(world)[2].body, "amount": "1000000.00"},
        ),
    ]
    return cases


async def _fingerprint(engine: AsyncEngine, user_ids: list[str]) -> tuple[Any, ...]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("""
                SELECT (SELECT count(*) FROM postings p JOIN accounts a ON a.id = p.account_id
                         WHERE a.owner_id = ANY(CAST(:ids AS uuid[]))),
                       (SELECT coalesce(sum(b.balance), 0) FROM balances b JOIN accounts a ON a.id = b.account_id
                         WHERE a.owner_id = ANY(CAST(:ids AS uuid[]))),
                       (SELECT count(*) FROM transactions WHERE user_id = ANY(CAST(:ids AS uuid[]))),
                       (SELECT count(*) FROM fee_quotes WHERE user_id = ANY(CAST(:ids AS uuid[]))),
                       (SELECT count(*) FROM bank_accounts WHERE user_id = ANY(CAST(:ids AS uuid[]))),
                       (SELECT count(*) FROM kyc_submissions WHERE user_id = ANY(CAST(:ids AS uuid[]))),
                       (SELECT count(*) FROM users)
            """),
                {"ids": user_ids},
            )
        ).one()
    return tuple(row)


async def test_every_bad_input_is_a_4xx_in_the_error_format_and_changes_nothing(
    world: World, engine: AsyncEngine
) -> None:
    cases = _cases(world)
    assert len(cases) > 300
    before = await _fingerprint(engine, world.user_ids)
    failures: list[str] = []
    for name, ep, body in cases:
        response = await world.client.post(
            f"{API}{ep.path}",
            headers={**world.headers[ep.headers_of], "Content-Type": "application/json"},
            content=json.dumps(body),
        )
        if not 400 <= response.status_code < 500 or response.status_code in (401, 403, 405):
            failures.append(f"{name}: {response.status_code} {response.text[:200]}")
            continue
        error = response.json().get("error", {})
        if not error.get("code") or not error.get("message") or not error.get("request_id"):
            failures.append(f"{name}: not in the error format: {response.text[:200]}")
    assert failures == [], "\n".join(failures[:40])
    assert await _fingerprint(engine, world.user_ids) == before


async def test_malformed_json_is_422(world: World) -> None:
    for payload in ("{", "{'amount': '1'}", '{"amount": "1",}', "\x00"):
        response = await world.client.post(
            f"{API}/banking/transfers",
            headers={**world.headers["alice"], "Content-Type": "application/json"},
            content=payload,
        )
        assert response.status_code == 422, payload
        assert response.json()["error"]["code"] == "validation_error"


async def test_free_text_is_stored_verbatim_never_interpreted(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    """Names may contain quotes and angle brackets: they are data, bound as parameters."""
    name = "<script>alert(1)</script> O'Brien\"; DROP TABLE users; -- {{7*7}}"
    account = await sign_up(client, name=name)
    assert (await client.get(f"{API}/me", headers=account["headers"])).json()["full_name"] == name
    async with engine.connect() as conn:
        assert (
            await conn.execute(text("SELECT count(*) FROM users WHERE full_name = :n"), {"n": name})
        ).scalar_one() == 1
    for bad_name in ("a\x00b", "x" * 201, ""):
        response = await client.post(
            f"{API}/auth/register",
            json={"email": new_email(), "password": STRONG_PASSWORD, "full_name": bad_name},
        )
        assert response.status_code == 422, bad_name[:10]
