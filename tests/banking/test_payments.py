"""The payment provider conformance suite: what every implementation must do (the sandbox
now; the Stripe adapter joins the parametrisation with the providers issue), and the
sandbox's documented magic values."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from diboas.providers.payments import (
    BankAccountDetails,
    CardSource,
    PaymentIdempotencyError,
    PaymentNotFoundError,
    PaymentProvider,
    PaymentStatus,
    SandboxPaymentProvider,
)

IMPLEMENTATIONS: dict[str, Callable[[Path], PaymentProvider]] = {
    "sandbox in memory": lambda _: SandboxPaymentProvider(),
    "sandbox on disk": lambda folder: SandboxPaymentProvider(state_dir=folder),
}
GOOD_BANK = BankAccountDetails("Ada Lovelace", "011000015", "000123456789")


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> PaymentProvider:
    return IMPLEMENTATIONS[request.param](tmp_path)


def _key() -> str:
    return f"test:{uuid.uuid4()}"


async def _final(provider: PaymentProvider, reference: str) -> PaymentStatus:
    # Bank payments may be pending for a while; conformance only needs them to end.
    for _ in range(50):
        result = await provider.status(reference)
        if result.status is not PaymentStatus.PENDING:
            return result.status
    raise AssertionError(f"{reference} never settled")


# --- conformance ----------------------------------------------------------------------------------


async def test_a_good_card_is_charged(provider: PaymentProvider) -> None:
    result = await provider.charge(
        amount=Decimal("12.34"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=_key(),
    )
    assert result.status is PaymentStatus.SUCCEEDED
    assert result.amount == Decimal("12.34") and result.currency == "USD"
    assert result.reference
    assert (await provider.status(result.reference)).status is PaymentStatus.SUCCEEDED


async def test_a_repeated_key_gives_the_first_result_and_charges_once(
    provider: PaymentProvider,
) -> None:
    key = _key()
    first = await provider.charge(
        amount=Decimal("5.00"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=key,
    )
    again = await provider.charge(
        amount=Decimal("5.00"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=key,
    )
    assert again == first
    other = await provider.charge(
        amount=Decimal("5.00"),
        currency="USD",
        source=CardSource("pm_card_visa"),
        idempotency_key=_key(),
    )
    assert other.reference != first.reference


async def test_a_key_reused_with_other_parameters_is_refused(provider: PaymentProvider) -> None:
    key = _key()
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


async def test_an_ach_debit_and_a_payout_settle(provider: PaymentProvider) -> None:
    debit = await provider.charge(
        amount=Decimal("100.00"), currency="USD", source=GOOD_BANK, idempotency_key=_key()
    )
    assert debit.status in (PaymentStatus.PENDING, PaymentStatus.SUCCEEDED)
    assert await _final(provider, debit.reference) is PaymentStatus.SUCCEEDED
    paid = await provider.payout(
        amount=Decimal("40.00"), currency="USD", destination=GOOD_BANK, idempotency_key=_key()
    )
    assert await _final(provider, paid.reference) is PaymentStatus.SUCCEEDED
    assert paid.reference != debit.reference


async def test_an_unknown_reference_is_not_found(provider: PaymentProvider) -> None:
    with pytest.raises(PaymentNotFoundError):
        await provider.status("ch_does_not_exist")


# --- the sandbox's magic values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        ("pm_card_visa", PaymentStatus.SUCCEEDED, None),
        ("pm_card_mastercard", PaymentStatus.SUCCEEDED, None),
        ("pm_card_chargeDeclined", PaymentStatus.FAILED, "card_declined"),
        ("pm_card_insufficientFunds", PaymentStatus.FAILED, "insufficient_funds"),
        ("pm_card_chargeDeclinedInsufficientFunds", PaymentStatus.FAILED, "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", PaymentStatus.FAILED, "expired_card"),
        ("pm_card_madeUp", PaymentStatus.FAILED, "invalid_payment_method"),
    ],
)
async def test_sandbox_card_tokens(token: str, status: PaymentStatus, code: str | None) -> None:
    sandbox = SandboxPaymentProvider()
    result = await sandbox.charge(
        amount=Decimal("10.00"), currency="USD", source=CardSource(token), idempotency_key=_key()
    )
    assert (result.status, result.failure_code) == (status, code)
    assert (result.failure_message is None) == (code is None)


@pytest.mark.parametrize(
    ("last4", "debit", "payout"),
    [
        ("6789", (PaymentStatus.SUCCEEDED, None), (PaymentStatus.SUCCEEDED, None)),
        (
            "0002",
            (PaymentStatus.FAILED, "account_closed"),
            (PaymentStatus.FAILED, "account_closed"),
        ),
        ("0003", (PaymentStatus.FAILED, "insufficient_funds"), (PaymentStatus.SUCCEEDED, None)),
    ],
)
async def test_sandbox_ach_account_numbers(
    last4: str,
    debit: tuple[PaymentStatus, str | None],
    payout: tuple[PaymentStatus, str | None],
) -> None:
    sandbox = SandboxPaymentProvider()
    bank = BankAccountDetails("Ada Lovelace", "011000015", "12345" + last4)
    charged = await sandbox.charge(
        amount=Decimal("10.00"), currency="USD", source=bank, idempotency_key=_key()
    )
    paid = await sandbox.payout(
        amount=Decimal("10.00"), currency="USD", destination=bank, idempotency_key=_key()
    )
    # Like real ACH: pending when made, final when asked later.
    assert charged.status is paid.status is PaymentStatus.PENDING
    final_debit = await sandbox.status(charged.reference)
    final_payout = await sandbox.status(paid.reference)
    assert (final_debit.status, final_debit.failure_code) == debit
    assert (final_payout.status, final_payout.failure_code) == payout


async def test_the_sandbox_on_disk_outlives_a_restart(tmp_path: Path) -> None:
    key = _key()
    bank = BankAccountDetails("Ada Lovelace", "011000015", "9990002")
    before = SandboxPaymentProvider(state_dir=tmp_path)
    pending = await before.charge(
        amount=Decimal("10.00"), currency="USD", source=bank, idempotency_key=key
    )
    after = SandboxPaymentProvider(state_dir=tmp_path)  # another process, or after a restart
    final = await after.status(pending.reference)
    assert (final.status, final.failure_code) == (PaymentStatus.FAILED, "account_closed")
    again = await after.charge(
        amount=Decimal("10.00"), currency="USD", source=bank, idempotency_key=key
    )
    assert again == pending
    with pytest.raises(PaymentIdempotencyError):
        await after.charge(
            amount=Decimal("11.00"), currency="USD", source=bank, idempotency_key=key
        )
    assert "9990002" not in _everything_in(tmp_path)


def _everything_in(folder: Path) -> str:
    return "".join(p.read_text() for p in folder.iterdir())


async def test_the_sandbox_is_deterministic_across_instances() -> None:
    key = _key()
    results = [
        await sandbox.charge(
            amount=Decimal("1.00"),
            currency="USD",
            source=CardSource("pm_card_visa"),
            idempotency_key=key,
        )
        for sandbox in (SandboxPaymentProvider(), SandboxPaymentProvider())
    ]
    assert results[0] == results[1]


def test_bank_details_never_show_the_account_number() -> None:
    assert "000123456789" not in repr(GOOD_BANK)
    assert GOOD_BANK.last4 == "6789"
