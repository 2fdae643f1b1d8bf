"""The Stripe adapter against a real localstripe, and the payments conformance suite.

The conformance tests run against every implementation of the payments interface (the
sandbox and Stripe). What each Stripe assertion rests on:

- localstripe's own behaviour: PaymentIntent create/confirm and status, the declining card
  4000000000000341 (``pm_card_chargeCustomerFail``; localstripe declines 4000000000000002 only
  when attaching it to a customer, unlike Stripe), 3-D Secure cards 4000002760003184 and
  4000000000003220 and their authentication, refunds, 404 for an unknown PaymentIntent, 401
  for a bad key, and webhooks it signs and delivers itself;
- ``tools/localstripe`` on top of it: ``Idempotency-Key`` (localstripe ignores the header; the
  launcher stores and replays answers as Stripe documents) — so "one PaymentIntent per key"
  and "a key reused with other parameters is refused" check that the adapter sends the keys,
  against Stripe's documented semantics rather than localstripe's;
- real local sockets standing in for a failing Stripe: a 500, a 429, a server that never
  answers, a closed port.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import stripe

from diboas.providers.payments import (
    BankAccountDetails,
    CardSource,
    PaymentError,
    PaymentIdempotencyError,
    PaymentNotFoundError,
    PaymentProvider,
    PaymentStatus,
    SandboxPaymentProvider,
)
from diboas.providers.resilience import (
    CircuitBreaker,
    Failover,
    ProviderError,
    ProviderSlot,
    ProviderTimeoutError,
    RetryPolicy,
    call,
)
from diboas.providers.stripe_payments import StripePayments, to_minor_units

from .conftest import LOCALSTRIPE_API_KEY

WEBHOOK_SECRET = "whsec_diboas_test"


def new_key() -> str:
    return f"diboas:deposit:{uuid.uuid4()}"


@dataclass
class Implementation:
    provider: PaymentProvider
    declining_card: str
    unknown_reference: str


@pytest.fixture(params=["sandbox", "stripe"])
async def implementation(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Implementation]:
    if request.param == "sandbox":
        sandbox = SandboxPaymentProvider(state_dir=tmp_path)
        yield Implementation(sandbox, "pm_card_chargeDeclined", "ch_sbx_" + "0" * 32)
        return
    adapter = StripePayments(
        api_key=LOCALSTRIPE_API_KEY, api_base=request.getfixturevalue("localstripe")
    )
    yield Implementation(adapter, "pm_card_chargeCustomerFail", "pi_0000000000unknown")
    await adapter.aclose()


@pytest.fixture
async def payments(localstripe: str) -> AsyncIterator[StripePayments]:
    adapter = StripePayments(
        api_key=LOCALSTRIPE_API_KEY, api_base=localstripe, webhook_secret=WEBHOOK_SECRET
    )
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def sdk(localstripe: str) -> AsyncIterator[stripe.StripeClient]:
    """The SDK itself, to set up cards and look at what Stripe holds."""
    http = stripe.HTTPXClient()
    yield stripe.StripeClient(
        LOCALSTRIPE_API_KEY, base_addresses={"api": localstripe}, http_client=http
    )
    await http.close_async()


async def card(sdk: stripe.StripeClient, number: str) -> CardSource:
    method = await sdk.v1.payment_methods.create_async(
        {
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
        }
    )
    return CardSource(method.id)


# --- conformance: every payments implementation -----------------------------------------


async def test_a_charge_with_one_key_is_made_once(implementation: Implementation) -> None:
    provider, key = implementation.provider, new_key()
    first = await provider.charge(
        amount=Decimal("25.00"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=key,
    )
    again = await provider.charge(
        amount=Decimal("25.00"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=key,
    )
    assert first.status is PaymentStatus.SUCCEEDED
    assert again == first
    status = await provider.status(first.reference)
    assert (status.reference, status.status, status.amount) == (
        first.reference,
        PaymentStatus.SUCCEEDED,
        Decimal("25.00"),
    )


async def test_a_key_reused_with_other_parameters_is_refused(
    implementation: Implementation,
) -> None:
    provider, key = implementation.provider, new_key()
    await provider.charge(
        amount=Decimal("5.00"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=key,
    )
    with pytest.raises(PaymentIdempotencyError) as refused:
        await provider.charge(
            amount=Decimal("6.00"),
            currency="USD",
            source=CardSource("pm_card_visa"),
            idempotency_key=key,
        )
    assert refused.value.retryable is False


async def test_a_decline_is_final_and_never_retried(implementation: Implementation) -> None:
    provider, key = implementation.provider, new_key()
    attempts = 0

    async def charge() -> object:
        nonlocal attempts
        attempts += 1
        return await provider.charge(
            amount=Decimal("7.00"),
            currency="USD",
            source=CardSource(implementation.declining_card),
            idempotency_key=key,
        )

    declined = await call("payments", charge, policy=RetryPolicy(attempts=3, base_delay=0))
    assert attempts == 1  # an answer, not a failure to answer: the resilience layer stops
    assert declined.status is PaymentStatus.FAILED  # type: ignore[attr-defined]
    assert declined.failure_code == "card_declined"  # type: ignore[attr-defined]
    assert await charge() == declined  # the same key names the same failed payment
    status = await provider.status(declined.reference)  # type: ignore[attr-defined]
    assert (status.status, status.failure_code) == (PaymentStatus.FAILED, "card_declined")


async def test_status_of_an_unknown_reference_is_an_error(implementation: Implementation) -> None:
    with pytest.raises(PaymentNotFoundError) as missing:
        await implementation.provider.status(implementation.unknown_reference)
    assert missing.value.retryable is False


async def test_lookup_by_key_finds_what_the_provider_did(implementation: Implementation) -> None:
    provider, key = implementation.provider, new_key()
    since = datetime.now(UTC)
    assert await provider.lookup(key, since=since) is None  # never received
    paid = await provider.charge(
        amount=Decimal("12.00"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=key,
    )
    found = await provider.lookup(key, since=since)
    assert found is not None
    assert (found.reference, found.status, found.amount) == (
        paid.reference,
        PaymentStatus.SUCCEEDED,
        Decimal("12.00"),
    )
    assert await provider.lookup(new_key(), since=since) is None


async def test_a_refund_is_made_once_per_key_and_never_above_the_charge(
    implementation: Implementation,
) -> None:
    provider = implementation.provider
    paid = await provider.charge(
        amount=Decimal("30.00"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=new_key(),
    )
    key = f"diboas:refund:{uuid.uuid4()}"
    first = await provider.refund(
        reference=paid.reference, amount=Decimal("10.00"), currency="USD", idempotency_key=key
    )
    again = await provider.refund(
        reference=paid.reference, amount=Decimal("10.00"), currency="USD", idempotency_key=key
    )
    assert first.status is PaymentStatus.SUCCEEDED and first.amount == Decimal("10.00")
    assert again.reference == first.reference != paid.reference
    with pytest.raises(PaymentError) as refused:
        await provider.refund(
            reference=paid.reference,
            amount=Decimal("31.00"),
            currency="USD",
            idempotency_key=f"diboas:refund:{uuid.uuid4()}",
        )
    assert refused.value.retryable is False


async def test_a_settled_payment_cannot_be_canceled(implementation: Implementation) -> None:
    provider = implementation.provider
    paid = await provider.charge(
        amount=Decimal("8.00"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=new_key(),
    )
    with pytest.raises(PaymentError) as refused:
        await provider.cancel(paid.reference)
    assert refused.value.retryable is False
    assert (await provider.status(paid.reference)).status is PaymentStatus.SUCCEEDED


async def test_returns_lists_only_returned_bank_debits(implementation: Implementation) -> None:
    provider = implementation.provider
    before = {r.reference for r in await provider.returns()}
    await provider.charge(
        amount=Decimal("9.00"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=new_key(),
    )
    # A card payment is never "returned" (card money comes back as a dispute webhook).
    assert {r.reference for r in await provider.returns()} == before


async def test_the_sandbox_returns_debits_from_account_0004_after_settling(tmp_path: Path) -> None:
    sandbox = SandboxPaymentProvider(state_dir=tmp_path)
    account = BankAccountDetails("Ada", "011000015", "000000000004")
    debit = await sandbox.charge(
        amount=Decimal("40.00"), currency="USD", source=account, idempotency_key=new_key()
    )
    assert debit.status is PaymentStatus.PENDING
    assert (await sandbox.status(debit.reference)).status is PaymentStatus.SUCCEEDED
    [returned] = await sandbox.returns()
    assert (returned.reference, returned.amount, returned.code) == (
        debit.reference,
        Decimal("40.00"),
        "R10",
    )
    # The report survives a restart (another process reads the same folder).
    assert [r.reference for r in await SandboxPaymentProvider(state_dir=tmp_path).returns()] == [
        debit.reference
    ]


# --- Stripe: payments on localstripe ----------------------------------------------------


async def test_card_4242_is_charged_through_a_payment_intent(
    payments: StripePayments, sdk: stripe.StripeClient
) -> None:
    key = new_key()
    result = await payments.charge(
        amount=Decimal("12.34"),
        currency="USD",
        source=await card(sdk, "4242424242424242"),
        idempotency_key=key,
    )
    assert (result.status, result.amount, result.currency) == (
        PaymentStatus.SUCCEEDED,
        Decimal("12.34"),
        "USD",
    )
    intent = await sdk.v1.payment_intents.retrieve_async(result.reference)
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 1234, "usd")
    assert intent.metadata["diboas_idempotency_key"] == key


async def test_one_key_makes_one_payment_intent(
    payments: StripePayments, sdk: stripe.StripeClient
) -> None:
    key = new_key()
    source = await card(sdk, "4242424242424242")
    for _ in range(3):
        await payments.charge(
            amount=Decimal("3.00"), currency="USD", source=source, idempotency_key=key
        )
    listed = await sdk.v1.payment_intents.list_async({"limit": 100})
    mine = [
        intent.id
        async for intent in listed.auto_paging_iter()
        if getattr(intent.metadata, "diboas_idempotency_key", None) == key
    ]
    assert len(mine) == 1


async def test_declined_card_fails_with_its_code(
    payments: StripePayments, sdk: stripe.StripeClient
) -> None:
    result = await payments.charge(
        amount=Decimal("9.99"),
        currency="USD",
        source=await card(sdk, "4000000000000341"),
        idempotency_key=new_key(),
    )
    assert (result.status, result.failure_code) == (PaymentStatus.FAILED, "card_declined")
    intent = await sdk.v1.payment_intents.retrieve_async(result.reference)
    assert intent.status == "requires_payment_method"


async def _authenticate(localstripe: str, reference: str, client_secret: str, *, ok: bool) -> None:
    # localstripe's stand-in for the customer completing 3-D Secure in Stripe.js.
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{localstripe}/v1/payment_intents/{reference}/_authenticate",
            data={
                "client_secret": client_secret,
                "success": "true" if ok else "false",
                "key": "pk_test_x",
            },
        )
    answer.raise_for_status()


@pytest.mark.parametrize(
    ("number", "authenticated", "final", "code"),
    [
        ("4000002760003184", True, PaymentStatus.SUCCEEDED, None),
        ("4000000000003220", False, PaymentStatus.FAILED, "payment_intent_authentication_failure"),
    ],
)
async def test_3d_secure_waits_for_the_customer(
    payments: StripePayments,
    sdk: stripe.StripeClient,
    localstripe: str,
    number: str,
    authenticated: bool,
    final: PaymentStatus,
    code: str | None,
) -> None:
    result = await payments.charge(
        amount=Decimal("20.00"),
        currency="USD",
        source=await card(sdk, number),
        idempotency_key=new_key(),
    )
    assert (result.status, result.failure_code) == (PaymentStatus.PENDING, "requires_action")
    intent = await sdk.v1.payment_intents.retrieve_async(result.reference)
    assert intent.status == "requires_action"
    assert intent.client_secret is not None
    await _authenticate(localstripe, result.reference, intent.client_secret, ok=authenticated)
    after = await payments.status(result.reference)
    assert (after.status, after.failure_code) == (final, code)


async def test_refund_part_of_a_payment_once_per_key(
    payments: StripePayments, sdk: stripe.StripeClient
) -> None:
    paid = await payments.charge(
        amount=Decimal("10.00"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=new_key(),
    )
    key = new_key()
    refund = await payments.refund(
        reference=paid.reference, amount=Decimal("4.00"), currency="USD", idempotency_key=key
    )
    again = await payments.refund(
        reference=paid.reference, amount=Decimal("4.00"), currency="USD", idempotency_key=key
    )
    assert (refund.status, refund.amount, refund.reference[:3]) == (
        PaymentStatus.SUCCEEDED,
        Decimal("4.00"),
        "re_",
    )
    assert again == refund
    refunds = await sdk.v1.refunds.list_async({"payment_intent": paid.reference})
    assert [(r.id, r.amount) for r in refunds.data] == [(refund.reference, 400)]


async def test_a_declined_payment_cannot_be_refunded(payments: StripePayments) -> None:
    declined = await payments.charge(
        amount=Decimal("10.00"),
        currency="USD",
        source=CardSource("pm_card_chargeCustomerFail"),
        idempotency_key=new_key(),
    )
    with pytest.raises(ProviderError) as refused:
        await payments.refund(
            reference=declined.reference,
            amount=Decimal("10.00"),
            currency="USD",
            idempotency_key=new_key(),
        )
    assert refused.value.retryable is False
    assert isinstance(refused.value, PaymentError)  # banking's jobs catch it too


async def test_bank_debits_and_payouts_are_not_stripes_job(payments: StripePayments) -> None:
    bank = BankAccountDetails("Ada Lovelace", "110000000", "000123456789")
    with pytest.raises(ProviderError) as debit:
        await payments.charge(
            amount=Decimal("1.00"), currency="USD", source=bank, idempotency_key=new_key()
        )
    with pytest.raises(ProviderError) as payout:
        await payments.payout(
            amount=Decimal("1.00"), currency="USD", destination=bank, idempotency_key=new_key()
        )
    assert {debit.value.code, payout.value.code} == {"unsupported_method"}
    assert not debit.value.retryable


async def test_amounts_go_to_stripe_in_whole_minor_units() -> None:
    assert (to_minor_units(Decimal("12.34"), "usd"), to_minor_units(Decimal(500), "JPY")) == (
        1234,
        500,
    )
    for amount, currency in [
        (Decimal("0.001"), "USD"),
        (Decimal("1.5"), "JPY"),
        (Decimal(0), "USD"),
    ]:
        with pytest.raises(ProviderError, match="whole minor units"):
            to_minor_units(amount, currency)


# --- Stripe: failures of the service itself ---------------------------------------------


@contextlib.asynccontextmanager
async def fake_stripe(behaviour: str) -> AsyncIterator[str]:
    """A real HTTP server on 127.0.0.1 that fails the way Stripe can."""
    release = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if behaviour == "hang":
            await release.wait()
        else:
            status = {"500": "500 Internal Server Error", "429": "429 Too Many Requests"}[behaviour]
            body = json.dumps({"error": {"type": "api_error", "message": "try later"}}).encode()
            head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        release.set()
        server.close()
        await server.wait_closed()


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize(
    ("behaviour", "code"), [("500", "provider_unavailable"), ("429", "rate_limited")]
)
async def test_server_errors_and_rate_limits_are_retryable(behaviour: str, code: str) -> None:
    async with fake_stripe(behaviour) as url:
        adapter = StripePayments(api_key=LOCALSTRIPE_API_KEY, api_base=url)
        with pytest.raises(ProviderError) as failed:
            await adapter.status("pi_123")
        await adapter.aclose()
    assert (failed.value.retryable, failed.value.code, failed.value.provider) == (
        True,
        code,
        "stripe",
    )
    assert isinstance(failed.value, PaymentError)
    # Stripe documents a 500's outcome as unknown; a 429 was not processed.
    assert failed.value.ambiguous is (behaviour == "500")  # type: ignore[attr-defined]


async def test_no_answer_in_time_is_a_timeout() -> None:
    async with fake_stripe("hang") as url:
        adapter = StripePayments(api_key=LOCALSTRIPE_API_KEY, api_base=url, timeout=0.3)
        with pytest.raises(ProviderTimeoutError) as timed_out:
            await adapter.charge(
                amount=Decimal("1.00"),
                currency="USD",
                source=CardSource("pm_card_visa"),
                idempotency_key=new_key(),
            )
        await adapter.aclose()
    assert timed_out.value.retryable
    assert isinstance(timed_out.value, PaymentError)
    assert timed_out.value.ambiguous  # Stripe may have acted


async def test_a_refused_connection_is_retryable_and_fails_over(localstripe: str) -> None:
    down = StripePayments(api_key=LOCALSTRIPE_API_KEY, api_base=closed_port())
    up = StripePayments(api_key=LOCALSTRIPE_API_KEY, api_base=localstripe)
    with pytest.raises(ProviderError) as refused:
        await down.status("pi_123")
    assert (refused.value.retryable, refused.value.code) == (True, "provider_unavailable")
    slots = [
        ProviderSlot("stripe-down", down, CircuitBreaker("stripe-down")),
        ProviderSlot("stripe-up", up, CircuitBreaker("stripe-up")),
    ]
    failover = Failover(slots, policy=RetryPolicy(attempts=2, base_delay=0))
    assert await failover.check_health(lambda p: p.healthy()) == {
        "stripe-down": False,
        "stripe-up": True,
    }
    slots[0].healthy = True  # as if the probe had not run yet: the call itself must fail over
    answered, result = await failover.run(
        lambda p: p.charge(
            amount=Decimal("2.00"),
            currency="USD",
            source=CardSource("pm_card_visa"),
            idempotency_key=new_key(),
        )
    )
    assert (answered, result.status) == ("stripe-up", PaymentStatus.SUCCEEDED)
    await down.aclose()
    await up.aclose()


async def test_a_bad_api_key_is_not_retryable(localstripe: str) -> None:
    adapter = StripePayments(api_key="not-a-key", api_base=localstripe)
    with pytest.raises(ProviderError) as refused:
        await adapter.status("pi_123")
    await adapter.aclose()
    assert (refused.value.retryable, refused.value.code) == (False, "provider_misconfigured")


# --- Stripe: signed webhooks ------------------------------------------------------------


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, asyncio.Queue[tuple[bytes, str]]]]:
    """A real HTTP endpoint collecting (body, Stripe-Signature) of each delivery."""
    received: asyncio.Queue[tuple[bytes, str]] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in head[1:] if line)
        }
        body = await reader.readexactly(int(headers["content-length"]))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        await received.put((body, headers["stripe-signature"]))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/stripe", received
    finally:
        server.close()
        await server.wait_closed()


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """Stripe's documented scheme: v1 = HMAC-SHA256(secret, "{t}.{payload}")."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


async def test_localstripe_webhooks_verify_and_tampering_does_not(
    payments: StripePayments, localstripe: str
) -> None:
    async with webhook_receiver() as (url, received):
        async with httpx.AsyncClient() as http:
            registered = await http.post(
                f"{localstripe}/_config/webhooks/{uuid.uuid4().hex}",
                data={"url": url, "secret": WEBHOOK_SECRET, "events[]": "payment_intent.succeeded"},
            )
        assert registered.status_code == 200
        paid = await payments.charge(
            amount=Decimal("15.00"),
            currency="USD",
            source=CardSource("pm_card_visa"),
            idempotency_key=new_key(),
        )
        # Webhooks are global in localstripe: other tests' payments may be delivered here too.
        while True:
            body, signature = await asyncio.wait_for(received.get(), timeout=30)
            event = payments.verify_webhook(body, signature)
            if event.object_id == paid.reference:
                break
    assert event.type == "payment_intent.succeeded"
    assert event.payment is not None
    assert (event.payment.status, event.payment.amount) == (
        PaymentStatus.SUCCEEDED,
        Decimal("15.00"),
    )

    tampered = body.replace(b'"amount": 1500', b'"amount": 9900')
    assert tampered != body
    forged = StripePayments(api_key=LOCALSTRIPE_API_KEY, webhook_secret="whsec_other")
    for payload, header, verifier in [
        (tampered, signature, payments),
        (body, signature, forged),
        (body, sign(body, WEBHOOK_SECRET, int(time.time()) - 600), payments),  # replayed late
    ]:
        with pytest.raises(ProviderError) as refused:
            verifier.verify_webhook(payload, header)
        assert (refused.value.code, refused.value.retryable) == ("invalid_signature", False)
    await forged.aclose()
    fresh = payments.verify_webhook(body, sign(body, WEBHOOK_SECRET, int(time.time())))
    assert fresh.id == event.id
