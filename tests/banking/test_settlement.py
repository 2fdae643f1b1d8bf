"""Settlement jobs are idempotent (delivery is at-least-once): run twice, run at the same
time, or run again after dying between the provider call and the settlement, they charge
once and post once. A provider outage is retried; a permanent refusal fails the movement.

These tests run the job handlers themselves, on an app without its in-process worker, so
that nothing settles behind their back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.banking import tasks
from diboas.banking.service import settlement
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.db.urls import plain_url
from diboas.orchestration.jobs import JobContext
from diboas.providers.payments import (
    BankAccountDetails,
    CardSource,
    PaymentError,
    PaymentResult,
    SandboxPaymentProvider,
)
from diboas.settings import Settings
from tests.api.conftest import settings_for_tests
from tests.banking.helpers import API, balance, customer, fund, link_account


@dataclass
class Recorder:
    """A payment provider that counts the calls made to the sandbox behind it, and can fail
    like a vendor outage (``outages`` calls raise a retryable error) or refuse for good."""

    inner: SandboxPaymentProvider = field(default_factory=SandboxPaymentProvider)
    outages: int = 0
    refuse: bool = False
    calls: list[str] = field(default_factory=list)
    name: str = "sandbox"

    @property
    def poll_interval(self) -> Any:
        return self.inner.poll_interval

    def _gate(self, what: str) -> None:
        self.calls.append(what)
        if self.refuse:
            raise PaymentError("account frozen by the provider", retryable=False)
        if self.outages > 0:
            self.outages -= 1
            raise PaymentError("503 from the provider")

    async def charge(self, **kwargs: Any) -> PaymentResult:
        self._gate("charge")
        return await self.inner.charge(**kwargs)

    async def payout(self, **kwargs: Any) -> PaymentResult:
        self._gate("payout")
        return await self.inner.payout(**kwargs)

    async def status(self, reference: str) -> PaymentResult:
        self._gate("status")
        return await self.inner.status(reference)


@pytest.fixture
async def quiet_client(database_url: URL) -> AsyncIterator[httpx.AsyncClient]:
    """The API without its in-process worker: jobs stay queued until a test runs them (and
    with no worker, it sends no email: the SMTP port is never used)."""
    app = create_app(
        settings_for_tests(smtp_port=9, run_worker_in_process=False),
        database_url=plain_url(database_url),
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def _context(sessions: SessionFactory, provider: Recorder) -> JobContext:
    return JobContext(sessions, Settings(env="test"), 0, {"payments": provider})


async def _status(engine: AsyncEngine, transaction_id: str) -> tuple[str, str | None]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, failure_code FROM transactions WHERE id = :id"),
                {"id": transaction_id},
            )
        ).one()
    return row.status, row.failure_code


async def _entries(engine: AsyncEngine, transaction_id: str) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text("SELECT count(*) FROM entries WHERE reference = :r"),
                    {"r": f"txn:{transaction_id}"},
                )
            ).scalar_one()
        )


async def _deposit(client: httpx.AsyncClient, headers: dict[str, str], **extra: str) -> str:
    response = await client.post(
        f"{API}/banking/deposits",
        headers=headers,
        json={"amount": "100.00", "currency": "USD", **extra},
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    return str(response.json()["id"])


async def test_a_deposit_job_run_twice_credits_once(
    quiet_client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(quiet_client, engine)
    transaction_id = await _deposit(quiet_client, ada["headers"])
    provider = Recorder()
    context = _context(sessions, provider)
    await tasks.deposit_settle(context, {"transaction_id": transaction_id})
    await tasks.deposit_settle(context, {"transaction_id": transaction_id})
    assert await _status(engine, transaction_id) == ("completed", None)
    assert await balance(engine, ada["id"]) == Decimal("96.30")
    assert await _entries(engine, transaction_id) == 1
    assert provider.calls == ["charge"]  # the second run saw it settled and stopped


async def test_concurrent_deliveries_credit_once(
    quiet_client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(quiet_client, engine)
    transaction_id = await _deposit(quiet_client, ada["headers"])
    context = _context(sessions, Recorder())
    await asyncio.gather(
        *(tasks.deposit_settle(context, {"transaction_id": transaction_id}) for _ in range(4))
    )
    assert await _status(engine, transaction_id) == ("completed", None)
    assert await balance(engine, ada["id"]) == Decimal("96.30")
    assert await _entries(engine, transaction_id) == 1


async def test_a_job_that_died_after_charging_does_not_charge_again(
    quiet_client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(quiet_client, engine)
    transaction_id = await _deposit(quiet_client, ada["headers"])
    provider = Recorder()
    settings = Settings(env="test")

    # The first delivery claims the transaction and charges the card, then its process dies.
    async def claim(session: Any) -> settlement.ProviderCall | None:
        return await settlement.begin(
            session,
            settings,
            uuid.UUID(transaction_id),
            expected_type="deposit",
            provider=lambda _transaction: "sandbox",
        )

    call = await run_in_transaction(sessions, claim)
    assert call is not None and call.card == CardSource("pm_card_visa")
    first = await provider.charge(
        amount=Decimal("100.00"),
        currency="USD",
        source=call.card,
        idempotency_key=call.idempotency_key,
    )
    assert await _status(engine, transaction_id) == ("processing", None)

    # The redelivery charges with the same key: the provider answers with the same payment.
    await tasks.deposit_settle(_context(sessions, provider), {"transaction_id": transaction_id})
    assert await _status(engine, transaction_id) == ("completed", None)
    async with engine.connect() as conn:
        reference = (
            await conn.execute(
                text("SELECT provider_reference FROM transactions WHERE id = :id"),
                {"id": transaction_id},
            )
        ).scalar_one()
    assert reference == first.reference
    assert await balance(engine, ada["id"]) == Decimal("96.30")


async def test_a_provider_outage_is_retried_then_settles(
    quiet_client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(quiet_client, engine)
    transaction_id = await _deposit(quiet_client, ada["headers"])
    provider = Recorder(outages=1)
    context = _context(sessions, provider)
    with pytest.raises(PaymentError):  # the worker retries it with backoff
        await tasks.deposit_settle(context, {"transaction_id": transaction_id})
    assert await _status(engine, transaction_id) == ("processing", None)
    assert await balance(engine, ada["id"]) == 0
    await tasks.deposit_settle(context, {"transaction_id": transaction_id})
    assert await _status(engine, transaction_id) == ("completed", None)
    assert await balance(engine, ada["id"]) == Decimal("96.30")


async def test_an_ach_deposit_waits_for_the_provider(
    quiet_client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(quiet_client, engine)
    bank = await link_account(quiet_client, ada["headers"])
    transaction_id = await _deposit(
        quiet_client, ada["headers"], method="ach", bank_account_id=bank["id"]
    )
    provider = Recorder()
    context = _context(sessions, provider)
    await tasks.deposit_settle(context, {"transaction_id": transaction_id})
    assert await _status(engine, transaction_id) == ("processing", None)
    assert await balance(engine, ada["id"]) == 0
    # The follow-up delivery asks for the status instead of debiting again.
    await tasks.deposit_settle(context, {"transaction_id": transaction_id})
    assert provider.calls == ["charge", "status"]
    assert await _status(engine, transaction_id) == ("completed", None)
    assert await balance(engine, ada["id"]) == Decimal("100.00")


async def test_a_payout_job_run_twice_captures_once(
    quiet_client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(quiet_client, engine)
    await fund(sessions, ada["id"], "100.00")
    bank = await link_account(quiet_client, ada["headers"])
    response = await quiet_client.post(
        f"{API}/banking/withdrawals",
        headers=ada["headers"],
        json={"amount": "40.00", "currency": "USD", "bank_account_id": bank["id"]},
    )
    transaction_id = response.json()["id"]
    provider = Recorder()
    context = _context(sessions, provider)
    for _ in range(3):  # payout (pending), status (paid), and one redelivery
        await tasks.payout(context, {"transaction_id": transaction_id})
    assert provider.calls == ["payout", "status"]
    assert await _status(engine, transaction_id) == ("completed", None)
    assert await balance(engine, ada["id"]) == Decimal("59.21")
    assert await balance(engine, ada["id"], "held") == 0


async def test_a_permanent_provider_refusal_fails_the_payout_and_releases_the_hold(
    quiet_client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(quiet_client, engine)
    await fund(sessions, ada["id"], "100.00")
    bank = await link_account(quiet_client, ada["headers"])
    response = await quiet_client.post(
        f"{API}/banking/withdrawals",
        headers=ada["headers"],
        json={"amount": "40.00", "currency": "USD", "bank_account_id": bank["id"]},
    )
    transaction_id = response.json()["id"]
    await tasks.payout(
        _context(sessions, Recorder(refuse=True)), {"transaction_id": transaction_id}
    )
    assert await _status(engine, transaction_id) == ("failed", "provider_error")
    assert await balance(engine, ada["id"]) == Decimal("100.00")
    assert await balance(engine, ada["id"], "held") == 0


async def test_the_job_hands_the_provider_the_decrypted_account(
    quiet_client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    ada = await customer(quiet_client, engine)
    bank = await link_account(quiet_client, ada["headers"], account_number="4445556667")
    transaction_id = await _deposit(
        quiet_client, ada["headers"], method="ach", bank_account_id=bank["id"]
    )

    async def claim(session: Any) -> settlement.ProviderCall | None:
        return await settlement.begin(
            session,
            Settings(env="test"),
            uuid.UUID(transaction_id),
            expected_type="deposit",
            provider=lambda _transaction: "sandbox",
        )

    call = await run_in_transaction(sessions, claim)
    assert call is not None
    assert call.bank == BankAccountDetails("Ada Lovelace", "011000015", "4445556667")
    assert "4445556667" not in repr(call)
