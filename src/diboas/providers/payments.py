"""Payments: the provider interface (card charges, ACH debits and ACH payouts) and a
deterministic sandbox that behaves like a vendor's test mode.

Every call takes an idempotency key. A provider must answer a repeated key with the result
of the first call and never move money twice; the platform derives the key from the
transaction id, so a job that runs again (delivery is at-least-once) is harmless. Calls are
made from jobs, never inside a request's database transaction.

Sandbox magic values (documented, never random):

==============================================  ==========================================
card payment method (``payment_method``)          outcome
==============================================  ==========================================
``pm_card_visa`` (the default),                    succeeds at once
``pm_card_mastercard``, ``pm_card_amex``
``pm_card_chargeDeclined``                         fails: ``card_declined``
``pm_card_insufficientFunds``,                     fails: ``insufficient_funds``
``pm_card_chargeDeclinedInsufficientFunds``
``pm_card_chargeDeclinedExpiredCard``              fails: ``expired_card``
any other ``pm_…``                                 fails: ``invalid_payment_method``
==============================================  ==========================================

ACH debits (deposits) and ACH credits (payouts) are ``pending`` when made, like real ACH;
``status(reference)`` then gives the final outcome. By the account number's last four digits:

- ``…0002``: fails with ``account_closed`` (return code R02), for debits and payouts;
- ``…0003``: a debit fails with ``insufficient_funds`` (R01); a payout to it succeeds;
- ``…0004``: a debit succeeds, then is returned (R10, "customer advises not authorized"):
  it appears in ``returns()``, as a bank's returns file reports it days later;
- anything else succeeds.

Card refunds (``refund``) of a succeeded charge succeed at once; ``lookup`` finds a request by
its idempotency key (the sandbox derives its references from the key).

Reusing an idempotency key with different parameters raises ``PaymentIdempotencyError``, as
Stripe does. References are derived from the idempotency key, so the same key always names
the same payment; the platform's sandbox keeps its payments under the data folder, so a
pending bank payment survives a restart.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from diboas.settings import Settings


class PaymentStatus(StrEnum):
    """Where a payment is: the provider may take days to settle bank transfers."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CardSource:
    """A card, by the provider's payment-method token (never a card number)."""

    payment_method: str


@dataclass(frozen=True, slots=True)
class BankAccountDetails:
    """A bank account to debit or pay; the full number never appears in a repr or a log."""

    holder_name: str
    routing_number: str
    account_number: str = field(repr=False)

    @property
    def last4(self) -> str:
        return self.account_number[-4:]


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """What the provider says about a payment."""

    reference: str
    status: PaymentStatus
    amount: Decimal
    currency: str
    failure_code: str | None = None
    failure_message: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentReturn:
    """A bank debit that settled and was then returned by the customer's bank (an ACH
    return): the money it brought in is taken back."""

    reference: str
    amount: Decimal
    currency: str
    code: str
    message: str


class PaymentError(Exception):
    """The provider could not answer. ``retryable`` errors (outage, timeout) are tried again.

    ``ambiguous`` says the request may have reached the provider and been acted on although
    no answer came back (a timeout, a connection lost after sending, a 5xx): the outcome is
    unknown, so the saga is parked and the provider is asked what became of the request
    (``lookup``) instead of being sent it again blindly.
    """

    def __init__(self, message: str, *, retryable: bool = True, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.ambiguous = ambiguous


class PaymentIdempotencyError(PaymentError):
    """An idempotency key was reused with different parameters."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class PaymentNotFoundError(PaymentError):
    """No payment has this reference."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class PaymentProvider(Protocol):
    """Moves money between the platform and the outside world."""

    name: str
    # How long to wait before asking again about a pending payment.
    poll_interval: timedelta

    async def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        source: CardSource | BankAccountDetails,
        idempotency_key: str,
    ) -> PaymentResult:
        """Take money in: charge a card, or debit a bank account (ACH)."""
        ...

    async def payout(
        self,
        *,
        amount: Decimal,
        currency: str,
        destination: BankAccountDetails,
        idempotency_key: str,
    ) -> PaymentResult:
        """Send money out to a bank account (ACH credit)."""
        ...

    async def status(self, reference: str) -> PaymentResult:
        """The current state of a payment."""
        ...

    async def lookup(self, idempotency_key: str, *, since: datetime) -> PaymentResult | None:
        """What became of the request sent with ``idempotency_key`` (no earlier than
        ``since``): its payment, or None when the provider never received it."""
        ...

    async def refund(
        self, *, reference: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> PaymentResult:
        """Give back ``amount`` of a succeeded charge; the result's reference is the refund's."""
        ...

    async def cancel(self, reference: str) -> PaymentResult:
        """Abandon a payment still waiting (for the customer's authentication, say)."""
        ...

    async def returns(self) -> list[PaymentReturn]:
        """Bank debits returned after they settled (the bank's returns file); each once or
        more — the platform processes a return once, by its reference."""
        ...


SUCCEEDING_CARDS = frozenset({"pm_card_visa", "pm_card_mastercard", "pm_card_amex"})
DEFAULT_CARD = "pm_card_visa"
_CARD_FAILURES: dict[str, tuple[str, str]] = {
    "pm_card_chargeDeclined": ("card_declined", "Your card was declined."),
    "pm_card_insufficientFunds": ("insufficient_funds", "Your card has insufficient funds."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "Your card has expired."),
}
_CLOSED = ("account_closed", "The bank account is closed (R02).")
_NSF = ("insufficient_funds", "The bank account has insufficient funds (R01).")
_UNAUTHORIZED = ("R10", "The customer advises the debit was not authorized (R10).")


@dataclass(frozen=True, slots=True)
class _Record:
    fingerprint: str
    first: PaymentResult
    final: PaymentResult

    def to_json(self) -> str:
        return json.dumps(
            {
                "fingerprint": self.fingerprint,
                "first": _dump(self.first),
                "final": _dump(self.final),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> _Record:
        data = json.loads(text)
        return cls(data["fingerprint"], _load(data["first"]), _load(data["final"]))


def _dump(result: PaymentResult) -> dict[str, str | None]:
    return {
        "reference": result.reference,
        "status": result.status.value,
        "amount": str(result.amount),
        "currency": result.currency,
        "failure_code": result.failure_code,
        "failure_message": result.failure_message,
    }


def _load(data: dict[str, Any]) -> PaymentResult:
    return PaymentResult(
        reference=data["reference"],
        status=PaymentStatus(data["status"]),
        amount=Decimal(data["amount"]),
        currency=data["currency"],
        failure_code=data["failure_code"],
        failure_message=data["failure_message"],
    )


_PREFIXES = {"card": "ch", "ach_debit": "py", "payout": "po", "refund": "re"}
_REFERENCE = re.compile(r"^(ch|py|po|re)_sbx_([0-9a-f]{32})$")


class SandboxPaymentProvider:
    """A deterministic stand-in for the payment vendor (see the module's magic values).

    With a ``state_dir`` its payments are kept there, one small JSON file each, so that they
    outlive a restart and are shared by the processes on one machine, as a vendor's sandbox
    keeps them on its side; without one they live in memory.
    """

    name = "sandbox"

    def __init__(
        self, *, state_dir: Path | None = None, poll_interval: timedelta = timedelta(seconds=1)
    ) -> None:
        self.state_dir = state_dir
        self.poll_interval = poll_interval
        self._records: dict[str, _Record] = {}
        self._returned: dict[str, PaymentReturn] = {}

    async def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        source: CardSource | BankAccountDetails,
        idempotency_key: str,
    ) -> PaymentResult:
        if isinstance(source, CardSource):
            return await self._once(
                "card", idempotency_key, amount, currency, source.payment_method, self._card
            )
        return await self._once(
            "ach_debit", idempotency_key, amount, currency, _bank_identity(source), self._debit
        )

    async def payout(
        self,
        *,
        amount: Decimal,
        currency: str,
        destination: BankAccountDetails,
        idempotency_key: str,
    ) -> PaymentResult:
        return await self._once(
            "payout",
            idempotency_key,
            amount,
            currency,
            _bank_identity(destination),
            self._payout,
        )

    async def status(self, reference: str) -> PaymentResult:
        match = _REFERENCE.match(reference)
        record = None if match is None else await self._read(match.group(2))
        if record is None or record.first.reference != reference:
            raise PaymentNotFoundError(f"no payment {reference}")
        # The sandbox's bank rails have settled by the time anyone asks.
        return record.final

    async def lookup(self, idempotency_key: str, *, since: datetime) -> PaymentResult | None:
        # References derive from the key, so the sandbox finds a request by its key alone.
        record = await self._read(hashlib.sha256(idempotency_key.encode()).hexdigest()[:32])
        return None if record is None else record.final

    async def refund(
        self, *, reference: str, amount: Decimal, currency: str, idempotency_key: str
    ) -> PaymentResult:
        paid = await self.status(reference)
        if paid.status is not PaymentStatus.SUCCEEDED or not reference.startswith("ch_"):
            raise PaymentError("only a succeeded card charge can be refunded", retryable=False)
        if amount <= 0 or amount > paid.amount or currency != paid.currency:
            raise PaymentError(
                f"a refund is 0 < amount <= {paid.amount} {paid.currency}", retryable=False
            )
        return await self._once("refund", idempotency_key, amount, currency, reference, _refunded)

    async def cancel(self, reference: str) -> PaymentResult:
        paid = await self.status(reference)
        if paid.status is not PaymentStatus.PENDING:
            raise PaymentError(f"a {paid.status} payment cannot be canceled", retryable=False)
        # The sandbox's pending payments are bank transfers already on their way.
        raise PaymentError("a bank transfer on its way cannot be canceled", retryable=False)

    # --- the sandbox's behaviour ---------------------------------------------------------

    async def _once(
        self,
        kind: str,
        key: str,
        amount: Decimal,
        currency: str,
        target: str,
        decide: _Decider,
    ) -> PaymentResult:
        if not key:
            raise PaymentError("an idempotency key is required", retryable=False)
        fingerprint = hashlib.sha256(f"{kind}|{amount}|{currency}|{target}".encode()).hexdigest()
        key_hash = hashlib.sha256(key.encode()).hexdigest()[:32]
        existing = await self._read(key_hash)
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise PaymentIdempotencyError(
                    "keys for idempotent requests can only be used with the same parameters"
                )
            return existing.first  # the first answer again, as the vendor replays it
        reference = f"{_PREFIXES[kind]}_sbx_{key_hash}"
        first, final = decide(reference, amount, currency, target)
        returned = self._returned.get(reference)
        if returned is not None and self.state_dir is not None:
            await asyncio.to_thread(
                _write_text,
                self.state_dir / "returns" / f"{key_hash}.json",
                json.dumps(
                    {
                        "reference": reference,
                        "amount": str(returned.amount),
                        "currency": returned.currency,
                        "code": returned.code,
                        "message": returned.message,
                    }
                ),
            )
        await self._write(key_hash, _Record(fingerprint, first, final))
        return first

    async def _read(self, key_hash: str) -> _Record | None:
        record = self._records.get(key_hash)
        if record is None and self.state_dir is not None:
            path = self.state_dir / f"{key_hash}.json"
            text = await asyncio.to_thread(_read_text, path)
            if text is not None:
                record = self._records[key_hash] = _Record.from_json(text)
        return record

    async def _write(self, key_hash: str, record: _Record) -> None:
        # Deterministic: two writers of one key write the same bytes, so the last one wins
        # harmlessly.
        self._records[key_hash] = record
        if self.state_dir is not None:
            await asyncio.to_thread(
                _write_text, self.state_dir / f"{key_hash}.json", record.to_json()
            )

    @staticmethod
    def _card(
        reference: str, amount: Decimal, currency: str, token: str
    ) -> tuple[PaymentResult, PaymentResult]:
        if token in SUCCEEDING_CARDS:
            result = PaymentResult(reference, PaymentStatus.SUCCEEDED, amount, currency)
        else:
            code, message = _CARD_FAILURES.get(
                token, ("invalid_payment_method", f"No such PaymentMethod: '{token}'")
            )
            result = PaymentResult(reference, PaymentStatus.FAILED, amount, currency, code, message)
        return result, result

    def _debit(
        self, reference: str, amount: Decimal, currency: str, target: str
    ) -> tuple[PaymentResult, PaymentResult]:
        failure = {"0002": _CLOSED, "0003": _NSF}.get(target[-4:])
        if target.endswith("0004"):
            self._returned[reference] = PaymentReturn(reference, amount, currency, *_UNAUTHORIZED)
        return _pending_then(reference, amount, currency, failure)

    async def returns(self) -> list[PaymentReturn]:
        if self.state_dir is not None:
            for text in await asyncio.to_thread(_read_all, self.state_dir / "returns"):
                data = json.loads(text)
                self._returned.setdefault(
                    data["reference"],
                    PaymentReturn(
                        data["reference"],
                        Decimal(data["amount"]),
                        data["currency"],
                        data["code"],
                        data["message"],
                    ),
                )
        return list(self._returned.values())

    @staticmethod
    def _payout(
        reference: str, amount: Decimal, currency: str, target: str
    ) -> tuple[PaymentResult, PaymentResult]:
        failure = _CLOSED if target.endswith("0002") else None
        return _pending_then(reference, amount, currency, failure)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _read_all(folder: Path) -> list[str]:
    return [path.read_text() for path in sorted(folder.glob("*.json"))] if folder.exists() else []


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{uuid.uuid4().hex}.tmp")  # one per writer
    partial.write_text(text)
    partial.replace(path)  # atomic: a reader sees the whole record or none


class _Decider(Protocol):
    def __call__(
        self, reference: str, amount: Decimal, currency: str, target: str, /
    ) -> tuple[PaymentResult, PaymentResult]: ...


def _refunded(
    reference: str, amount: Decimal, currency: str, _charge: str
) -> tuple[PaymentResult, PaymentResult]:
    result = PaymentResult(reference, PaymentStatus.SUCCEEDED, amount, currency)
    return result, result


def _bank_identity(account: BankAccountDetails) -> str:
    return f"{account.routing_number}:{account.account_number}"


def _pending_then(
    reference: str, amount: Decimal, currency: str, failure: tuple[str, str] | None
) -> tuple[PaymentResult, PaymentResult]:
    pending = PaymentResult(reference, PaymentStatus.PENDING, amount, currency)
    if failure is None:
        return pending, PaymentResult(reference, PaymentStatus.SUCCEEDED, amount, currency)
    code, message = failure
    return pending, PaymentResult(reference, PaymentStatus.FAILED, amount, currency, code, message)


@functools.cache
def _sandbox(state_dir: Path) -> SandboxPaymentProvider:
    return SandboxPaymentProvider(state_dir=state_dir)


def payment_provider(settings: Settings, *, method: str | None) -> PaymentProvider:
    """The provider for a payment method: cards go to Stripe once ``DIBOAS_STRIPE_API_KEY`` is
    set; bank debits and payouts stay on the bank-rails sandbox (Stripe pays out only to the
    platform's own bank account, so a bank partner's adapter will take this place)."""
    if method == "card" and settings.stripe_api_key is not None:
        from diboas.providers.stripe_payments import StripePayments

        return StripePayments(
            api_key=settings.stripe_api_key.get_secret_value(),
            api_base=settings.stripe_api_base,
            webhook_secret=(
                settings.stripe_webhook_secret.get_secret_value()
                if settings.stripe_webhook_secret
                else ""
            ),
            timeout=settings.stripe_timeout_seconds,
            poll_interval=timedelta(seconds=settings.stripe_poll_interval_seconds),
        )
    return default_payment_provider(settings)


def default_payment_provider(settings: Settings) -> PaymentProvider:
    """The sandbox, keeping its payments under ``DIBOAS_DATA_DIR/sandbox/payments``.

    The app's services may hand in another implementation (``services["payments"]``).
    """
    return _sandbox(Path(settings.data_dir).resolve() / "sandbox" / "payments")
