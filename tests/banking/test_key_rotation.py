"""Rotating the encryption key with no failed request, for linked bank accounts.

Numbers sealed under version 1 keep paying out once version 2 is current (with 1 still
configured); an account linked before the rotation cannot be linked again during it or after
it; re-sealing moves every row (numbers and fingerprints) to version 2, can run while links
happen, and does nothing the second time; once version 1 is dropped everything still works;
and a process without the key an account needs refuses it clearly (503) instead of failing
inside the payout job. Each test has a database of its own (re-sealing walks whole tables).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.banking import repository
from diboas.banking.service.bank_accounts import account_fingerprint
from diboas.banking.service.common import bank_context, bank_details
from diboas.db.engine import SessionFactory, create_session_factory
from diboas.kit.crypto import KeyRing, KeyUnavailableError, Sealed
from diboas.ops import keys as key_ops
from tests.api.conftest import Mailbox
from tests.banking.helpers import API, ROUTING, balance, customer, fund, link_account, settled
from tests.kit.rotation import after, before, during, own_database, serving

NUMBER = "000123456789"


@pytest.fixture
async def db(database_server: str) -> AsyncIterator[tuple[URL, AsyncEngine]]:
    async with own_database(database_server) as database:
        yield database


def _link_body(number: str, routing: str = ROUTING) -> dict[str, str]:
    return {
        "holder_name": "Ada Lovelace",
        "bank_name": "First Test Bank",
        "routing_number": routing,
        "account_number": number,
    }


async def _link(client: httpx.AsyncClient, headers: dict[str, str], number: str) -> httpx.Response:
    return await client.post(
        f"{API}/banking/bank-accounts", headers=headers, json=_link_body(number)
    )


async def _withdraw(
    client: httpx.AsyncClient, headers: dict[str, str], bank_account_id: str, amount: str
) -> httpx.Response:
    """A withdrawal at a quoted fee: the quote, then the movement presenting it."""
    quote = await client.post(
        f"{API}/fees/quote",
        headers=headers,
        json={"operation": "withdrawal", "amount": amount, "currency": "USD", "method": "ach"},
    )
    assert quote.status_code == 201, quote.text
    return await client.post(
        f"{API}/banking/withdrawals",
        headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
        json={
            "amount": amount,
            "currency": "USD",
            "bank_account_id": bank_account_id,
            "quote_id": quote.json()["quote_id"],
        },
    )


async def _paid_out(
    client: httpx.AsyncClient, headers: dict[str, str], bank_account_id: str, amount: str
) -> dict[str, Any]:
    accepted = await _withdraw(client, headers, bank_account_id, amount)
    assert accepted.status_code == 201, accepted.text
    done = await settled(client, headers, accepted.json()["id"])
    assert done["status"] == "completed", done
    return done


async def _rows(engine: AsyncEngine) -> dict[uuid.UUID, Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("""SELECT id, user_id, routing_number, status, account_number_ciphertext,
                           key_version, fingerprint, fingerprint_version FROM bank_accounts""")
        )
        return {row.id: row for row in rows}


def _opens(keys: KeyRing, row: Any) -> str:
    sealed = Sealed(row.key_version, bytes(row.account_number_ciphertext))
    return keys.decrypt(sealed, context=bank_context(row.id, row.user_id)).decode()


async def test_bank_accounts_stay_usable_through_a_rotation(
    db: tuple[URL, AsyncEngine], mailbox: tuple[Mailbox, int]
) -> None:
    url, engine = db
    sessions = create_session_factory(engine)
    port = mailbox[1]

    # Before: Ada links an account (and one she later removes); Bob links the same number.
    async with serving(before(port), url) as client:
        ada, bob = await customer(client, engine), await customer(client, engine)
        await fund(sessions, ada["id"], "500.00")
        first = await link_account(client, ada["headers"], account_number=NUMBER)
        removed = await link_account(client, ada["headers"], account_number="55500001111")
        gone = await client.delete(
            f"{API}/banking/bank-accounts/{removed['id']}", headers=ada["headers"]
        )
        assert gone.status_code == 204
        await link_account(client, bob["headers"], account_number=NUMBER)
    rows = await _rows(engine)
    assert {(r.key_version, r.fingerprint_version) for r in rows.values()} == {(1, 1)}

    # During: version 2 seals, version 1 still opens.
    async with serving(during(port), url) as client:
        again = await _link(client, ada["headers"], NUMBER)
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "bank_account_exists"
        second = await link_account(client, ada["headers"], account_number="77700002222")
        twice = await _link(client, ada["headers"], "77700002222")
        assert twice.status_code == 409
        # The account sealed under version 1 pays out (the payout job opens its number).
        await _paid_out(client, ada["headers"], first["id"], "40.00")
    rows = await _rows(engine)
    new_row = rows[uuid.UUID(second["id"])]
    assert (new_row.key_version, new_row.fingerprint_version) == (2, 2)

    keys = KeyRing.from_settings(during(port))
    status = await _status(sessions, keys)
    assert status.counts["bank_accounts.key_version"] == {1: 3, 2: 1}
    assert status.counts["bank_accounts.fingerprint_version"] == {1: 3, 2: 1}
    assert status.pending == 6 and status.droppable == [] and status.missing == []

    # Re-seal: every row moves to version 2, numbers unchanged, fingerprints made again.
    (banking, wallets) = await key_ops.reseal(sessions, keys, batch_size=2)
    assert (banking.table, banking.resealed, banking.unavailable) == ("bank_accounts", 3, [])
    assert banking.batches == 2 and wallets.resealed == 0
    resealed = await _rows(engine)
    v2_only = KeyRing.from_settings(after(port))
    for row_id, row in resealed.items():
        assert (row.key_version, row.fingerprint_version) == (2, 2)
        assert _opens(v2_only, row) == _opens(keys, rows[row_id])
        assert bytes(row.fingerprint) == account_fingerprint(
            v2_only, row.routing_number, _opens(v2_only, row)
        )
    assert {r.status for r in resealed.values()} == {"active", "removed"}
    # A second run finds nothing to do.
    assert [t.resealed for t in await key_ops.reseal(sessions, keys)] == [0, 0]
    assert await _rows(engine) == resealed
    status = await _status(sessions, keys)
    assert status.counts["bank_accounts.key_version"] == {2: 4}
    assert status.pending == 0 and status.droppable == [1]
    assert "v1: no rows use it — it can be dropped" in status.lines()

    # After: version 1 dropped. Duplicates are still refused, old and new accounts pay out.
    async with serving(after(port), url) as client:
        for number in (NUMBER, "77700002222"):
            refused = await _link(client, ada["headers"], number)
            assert refused.status_code == 409, refused.text
        await _paid_out(client, ada["headers"], first["id"], "10.00")
        await _paid_out(client, ada["headers"], second["id"], "10.00")
        listed = await client.get(f"{API}/banking/bank-accounts", headers=ada["headers"])
        assert [a["id"] for a in listed.json()] == [first["id"], second["id"]]
    assert await balance(engine, ada["id"]) < Decimal("440.00")


async def test_an_account_under_a_key_version_not_configured_is_refused_clearly(
    db: tuple[URL, AsyncEngine], mailbox: tuple[Mailbox, int]
) -> None:
    url, engine = db
    sessions = create_session_factory(engine)
    port = mailbox[1]
    async with serving(during(port), url) as client:
        ada = await customer(client, engine)
        await fund(sessions, ada["id"], "100.00")
        linked = await link_account(client, ada["headers"], account_number=NUMBER)

    # A process that never got version 2 (deployed without it, or rolled back).
    async with serving(before(port), url) as client:
        refused = await _withdraw(client, ada["headers"], linked["id"], "20.00")
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "encryption_key_unavailable"
        assert (
            error["message"] == "this bank account cannot be used right now; please try again later"
        )
        assert error["details"] == {"bank_account_id": linked["id"]}
        deposit = await client.post(
            f"{API}/banking/deposits",
            headers={**ada["headers"], "Idempotency-Key": str(uuid.uuid4())},
            json={
                "amount": "20.00",
                "currency": "USD",
                "method": "ach",
                "bank_account_id": linked["id"],
            },
        )
        assert deposit.status_code == 503
        assert deposit.json()["error"]["code"] == "encryption_key_unavailable"
        # Nothing was accepted: no hold, no history row.
        history = await client.get(f"{API}/transactions", headers=ada["headers"])
        assert history.json()["items"] == []
        # Listing still works: it shows only the last four digits.
        listed = await client.get(f"{API}/banking/bank-accounts", headers=ada["headers"])
        assert listed.status_code == 200 and listed.json()[0]["id"] == linked["id"]
    assert await balance(engine, ada["id"]) == Decimal("100.00")
    assert await balance(engine, ada["id"], "held") == Decimal(0)

    # The payout job's own path (a movement accepted before the key went missing) says the
    # same, so the job retries and moves no money until the key is back.
    async with sessions() as session:
        account = await repository.get_bank_account(session, uuid.UUID(linked["id"]))
    assert account is not None
    with pytest.raises(KeyUnavailableError, match="key version 2 is not configured"):
        bank_details(before(port), account)
    assert bank_details(during(port), account).account_number == NUMBER

    # The status names the missing version; re-sealing leaves such rows alone, reporting them.
    keys = KeyRing.from_settings(before(port))
    status = await _status(sessions, keys)
    assert status.missing == [2]
    assert any(line.startswith("NOT CONFIGURED but in use: v2") for line in status.lines())
    banking, _ = await key_ops.reseal(sessions, keys)
    assert banking.resealed == 0 and banking.unavailable == [uuid.UUID(linked["id"])]


async def test_reseal_while_links_happen_lets_no_duplicate_in(
    db: tuple[URL, AsyncEngine], mailbox: tuple[Mailbox, int]
) -> None:
    url, engine = db
    sessions = create_session_factory(engine)
    port = mailbox[1]
    async with serving(before(port), url) as client:
        users = [await customer(client, engine) for _ in range(4)]
        for user in users:
            for n in range(4):
                await link_account(client, user["headers"], account_number=f"4440000{n:04d}")

    keys = KeyRing.from_settings(during(port))
    # A small pool: the requests queue for connections (the server's are shared with others).
    async with serving(during(port, db_pool_size=6, db_max_overflow=0), url) as client:

        async def relink(user: dict[str, Any], n: int) -> int:
            response = await _link(client, user["headers"], f"4440000{n:04d}")
            return response.status_code

        async def link_new(user: dict[str, Any], n: int) -> int:
            response = await _link(client, user["headers"], f"5550000{n:04d}")
            return response.status_code

        # Each user tries every old account again (twice) and two new ones (twice each),
        # while re-sealing runs in batches of one.
        attempts = [relink(u, n) for u in users for n in range(4) for _ in range(2)]
        fresh = [link_new(u, n) for u in users for n in range(2) for _ in range(2)]
        results = await asyncio.gather(
            key_ops.reseal(sessions, keys, batch_size=1), *attempts, *fresh
        )
    relinks, new_links = results[1 : 1 + len(attempts)], results[1 + len(attempts) :]
    assert set(relinks) == {409}
    assert sorted(new_links) == [201] * (len(users) * 2) + [409] * (len(users) * 2)

    rows = await _rows(engine)
    assert len(rows) == len(users) * 6
    # Whatever the interleaving, one reseal run more leaves every row on version 2 with the
    # fingerprint it should have, and no user holds one account twice.
    await key_ops.reseal(sessions, keys)
    rows = await _rows(engine)
    seen = set()
    for row in rows.values():
        assert (row.key_version, row.fingerprint_version) == (2, 2)
        number = _opens(keys, row)
        assert bytes(row.fingerprint) == account_fingerprint(keys, row.routing_number, number)
        seen.add((row.user_id, row.routing_number, number))
    assert len(seen) == len(rows)


async def _status(sessions: SessionFactory, keys: KeyRing) -> key_ops.KeyStatus:
    async with sessions() as session:
        return await key_ops.status(session, keys)
