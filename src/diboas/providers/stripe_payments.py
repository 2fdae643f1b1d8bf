"""Card payments through Stripe, with the official ``stripe`` SDK.

Implements the payments interface of ``providers.payments`` for cards: a charge is a
PaymentIntent created with the card's payment-method token, then confirmed; ``status`` reads
the PaymentIntent back; ``refund`` refunds it (all or part). Every write carries an
idempotency key derived from the caller's key, so Stripe answers a repeated call with its
first answer and never charges twice (Stripe keeps keys for at least 24 hours).

How Stripe's answers map onto the interface:

================================================  =============================================
Stripe                                            here
================================================  =============================================
PaymentIntent ``succeeded``                       ``SUCCEEDED``
``processing``, ``requires_action`` (3-D Secure   ``PENDING`` (``requires_action`` carries that
the customer must complete), ``requires_capture``  code: only the customer can move it on)
card declined (HTTP 402), or                      ``FAILED`` with the decline code — a final
``requires_payment_method`` after a failure       answer, never retried
``canceled``                                      ``FAILED`` (``canceled``)
429, connection refused                           ``StripeError``, ``retryable``
5xx, connection reset or closed after sending     ``StripeError``, ``retryable``, ``ambiguous``
no answer within ``timeout`` seconds              ``StripeTimeoutError`` (``ambiguous``)
unknown reference                                 ``StripeNotFoundError``
same key, other parameters                        ``StripeIdempotencyError``
other 4xx (bad request, bad API key)              ``StripeError``, not retryable
================================================  =============================================

The errors are both the resilience layer's ``ProviderError`` (timeouts, retries, breaker and
failover act on ``retryable``) and the payments interface's ``PaymentError`` (what banking's
jobs catch).

Bank debits and payouts are not Stripe's job here: Stripe pays out only to the platform's own
bank account (third-party payouts need Connect), so ``payout`` and a bank-account ``charge``
are refused with ``unsupported_method`` and go through the bank-transfer provider.

Settings: ``DIBOAS_STRIPE_API_KEY``, ``DIBOAS_STRIPE_API_BASE`` (empty: Stripe itself; tests
point it at localstripe) and ``DIBOAS_STRIPE_WEBHOOK_SECRET``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import stripe
from stripe.params import PaymentIntentListParams

from diboas.providers.payments import (
    BankAccountDetails,
    CardSource,
    PaymentError,
    PaymentIdempotencyError,
    PaymentNotFoundError,
    PaymentResult,
    PaymentReturn,
    PaymentStatus,
)
from diboas.providers.resilience import ProviderError, ProviderTimeoutError

PROVIDER = "stripe"
STRIPE_API_BASE = "https://api.stripe.com"
# Stripe keeps these in the metadata so a payment can be traced back to the platform's key.
KEY_METADATA = "diboas_idempotency_key"

# Stripe amounts are integers in the currency's smallest unit; a few currencies have no
# minor unit or three decimals (https://docs.stripe.com/currencies#zero-decimal).
_ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
_THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])

_WAITING_FOR = {
    "requires_action": "The customer must authenticate the payment (3-D Secure).",
    "requires_confirmation": "The payment was created but never confirmed.",
}

# Stripe's clock and ours may differ a little: look a minute further back.
_CLOCK_SKEW_SECONDS = 60

_PENDING = frozenset({"processing", "requires_action", "requires_capture", "requires_confirmation"})


class StripeError(ProviderError, PaymentError):
    """Stripe refused or failed; ``retryable`` says whether the same call may succeed later,
    ``ambiguous`` whether Stripe may have acted on it all the same."""

    def __init__(
        self, message: str, *, retryable: bool, code: str, ambiguous: bool = False
    ) -> None:
        ProviderError.__init__(self, message, provider=PROVIDER, retryable=retryable, code=code)
        self.ambiguous = ambiguous


class StripeTimeoutError(ProviderTimeoutError, PaymentError):
    """Stripe did not answer in time: it may or may not have acted."""

    def __init__(self, message: str) -> None:
        ProviderTimeoutError.__init__(self, message, provider=PROVIDER)
        self.ambiguous = True


class StripeNotFoundError(ProviderError, PaymentNotFoundError):
    """Stripe has no payment with this reference."""

    def __init__(self, message: str) -> None:
        ProviderError.__init__(
            self, message, provider=PROVIDER, retryable=False, code="payment_not_found"
        )


class StripeIdempotencyError(ProviderError, PaymentIdempotencyError):
    """An idempotency key was reused with different parameters."""

    def __init__(self, message: str) -> None:
        ProviderError.__init__(
            self, message, provider=PROVIDER, retryable=False, code="idempotency_key_reused"
        )


@dataclass(frozen=True, slots=True)
class Dispute:
    """A chargeback: the cardholder's bank took ``amount`` of a payment back."""

    id: str
    payment_reference: str  # the PaymentIntent disputed
    amount: Decimal
    currency: str
    reason: str
    status: str = ""  # needs_response, under_review, won, lost…


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A webhook whose signature checked out. ``payment`` is set for PaymentIntent events,
    ``dispute`` for dispute events."""

    id: str
    type: str
    object_id: str
    payment: PaymentResult | None
    dispute: Dispute | None = None


def to_minor_units(amount: Decimal, currency: str) -> int:
    """``amount`` in the currency's smallest unit; refuses what Stripe could not charge exactly."""
    scaled = amount.scaleb(_exponent(currency))
    if amount <= 0 or scaled != scaled.to_integral_value():
        raise StripeError(
            f"{amount} {currency.upper()} is not a positive amount in whole minor units",
            retryable=False,
            code="invalid_amount",
        )
    return int(scaled)


def from_minor_units(amount: int, currency: str) -> Decimal:
    """The decimal amount of ``amount`` smallest units of ``currency``."""
    return Decimal(amount).scaleb(-_exponent(currency))


def _exponent(currency: str) -> int:
    code = currency.lower()
    if code in _ZERO_DECIMAL:
        return 0
    return 3 if code in _THREE_DECIMAL else 2


class StripePayments:
    """The payments interface on Stripe's PaymentIntents (cards) and Refunds.

    ``api_base`` points the SDK elsewhere than Stripe (localstripe in tests); ``timeout`` bounds
    each HTTP request. The SDK's own network retries are off: retries are the resilience
    layer's decision, so one policy governs them.
    """

    name = PROVIDER

    def __init__(
        self,
        *,
        api_key: str,
        api_base: str = STRIPE_API_BASE,
        webhook_secret: str = "",
        timeout: float = 10.0,
        poll_interval: timedelta = timedelta(seconds=30),
    ) -> None:
        self.poll_interval = poll_interval
        self.webhook_secret = webhook_secret
        self._http = stripe.HTTPXClient(timeout=timeout)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=self._http,
            max_network_retries=0,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.close_async()  # type: ignore[no-untyped-call]

    # --- the payments interface ----------------------------------------------------------

    async def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        source: CardSource | BankAccountDetails,
        idempotency_key: str,
    ) -> PaymentResult:
        """Charge a card: create the PaymentIntent, then confirm it (each step idempotent)."""
        if not isinstance(source, CardSource):
            raise _unsupported("bank debits")
        if not idempotency_key:
            raise StripeError("an idempotency key is required", retryable=False, code="no_key")
        minor = to_minor_units(amount, currency)
        intents = self._client.v1.payment_intents
        with _mapped_errors():
            intent = await intents.create_async(
                {
                    "amount": minor,
                    "currency": currency.lower(),
                    "payment_method": source.payment_method,
                    # Cards only: no redirect-based method, so no return URL is needed.
                    "allowed_payment_method_types": ["card"],
                    "metadata": {KEY_METADATA: idempotency_key},
                },
                {"idempotency_key": idempotency_key},
            )
        if intent.status != "requires_confirmation":
            return _payment(intent)
        try:
            with _mapped_errors(declines=True):
                intent = await intents.confirm_async(
                    intent.id, options={"idempotency_key": f"{idempotency_key}:confirm"}
                )
        except _Declined as declined:
            # A decline is Stripe's final answer about this PaymentIntent, not a failure to
            # answer: it is reported as a failed payment, like the sandbox's declining cards.
            return PaymentResult(
                reference=intent.id,
                status=PaymentStatus.FAILED,
                amount=from_minor_units(minor, currency),
                currency=currency.upper(),
                failure_code=declined.code,
                failure_message=str(declined),
            )
        return _payment(intent)

    async def payout(
        self,
        *,
        amount: Decimal,
        currency: str,
        destination: BankAccountDetails,
        idempotency_key: str,
    ) -> PaymentResult:
        """Refused: bank payouts are not made through Stripe (see the module's notes)."""
        raise _unsupported("bank payouts")

    async def status(self, reference: str) -> PaymentResult:
        """The PaymentIntent's current state."""
        with _mapped_errors(reference=reference):
            intent = await self._client.v1.payment_intents.retrieve_async(reference)
        return _payment(intent)

    async def refund(
        self,
        *,
        reference: str,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
    ) -> PaymentResult:
        """Refund ``amount`` of a succeeded payment; the result's reference is the refund's."""
        minor = to_minor_units(amount, currency)
        with _mapped_errors(reference=reference):
            refund = await self._client.v1.refunds.create_async(
                {
                    "payment_intent": reference,
                    "amount": minor,
                    "metadata": {KEY_METADATA: idempotency_key},
                },
                {"idempotency_key": idempotency_key},
            )
        status = {"succeeded": PaymentStatus.SUCCEEDED, "pending": PaymentStatus.PENDING}.get(
            getattr(refund, "status", None) or "", PaymentStatus.FAILED
        )
        failed = status is PaymentStatus.FAILED
        return PaymentResult(
            reference=refund.id,
            status=status,
            amount=from_minor_units(refund.amount, refund.currency),
            currency=refund.currency.upper(),
            failure_code=(
                getattr(refund, "failure_reason", None)
                or getattr(refund, "status", None)
                or "refund_failed"
            )
            if failed
            else None,
        )

    async def lookup(self, idempotency_key: str, *, since: datetime) -> PaymentResult | None:
        """The PaymentIntent created with ``idempotency_key`` (kept in its metadata), found
        among those created since ``since``; None when Stripe never received the request.

        Listing by creation time, not the Search API: search is eventually consistent (a
        payment can be missing from it for a minute), listing is not.
        """
        params: PaymentIntentListParams = {
            "created": {"gte": int(since.timestamp()) - _CLOCK_SKEW_SECONDS},
            "limit": 100,
        }
        intents = self._client.v1.payment_intents
        with _mapped_errors():
            page = await intents.list_async(params)
            while True:
                for intent in page.data:
                    metadata = intent.metadata
                    if (
                        metadata
                        and KEY_METADATA in metadata
                        and metadata[KEY_METADATA] == idempotency_key
                    ):
                        return _payment(intent)
                if not page.has_more or not page.data:
                    return None
                page = await intents.list_async({**params, "starting_after": page.data[-1].id})

    async def cancel(self, reference: str) -> PaymentResult:
        """Cancel a PaymentIntent that is still waiting (for 3-D Secure, say)."""
        with _mapped_errors(reference=reference):
            intent = await self._client.v1.payment_intents.cancel_async(reference)
        return _payment(intent)

    async def returns(self) -> list[PaymentReturn]:
        """None: card disputes reach the platform as webhooks (``charge.dispute.*``), and bank
        debits are not made through Stripe here."""
        return []

    async def healthy(self) -> bool:
        """Whether Stripe answers an authenticated read (for ``Failover.check_health``)."""
        try:
            with _mapped_errors():
                await self._client.v1.balance.retrieve_async()
        except ProviderError:
            return False
        return True

    # --- webhooks ------------------------------------------------------------------------

    def verify_webhook(self, payload: bytes, signature_header: str) -> WebhookEvent:
        """Check the ``Stripe-Signature`` header (HMAC-SHA256 of ``t.payload`` with the
        endpoint's secret, at most 5 minutes old) and read the event."""
        if not self.webhook_secret:
            raise StripeError(
                "no webhook secret is configured", retryable=False, code="webhook_not_configured"
            )
        try:
            event = stripe.Webhook.construct_event(payload, signature_header, self.webhook_secret)
        except stripe.SignatureVerificationError as exc:
            raise StripeError(
                "the webhook signature does not match", retryable=False, code="invalid_signature"
            ) from exc
        except ValueError as exc:
            raise StripeError(
                "the webhook payload is not JSON", retryable=False, code="invalid_payload"
            ) from exc
        subject = event.data.object
        payment = None
        if isinstance(subject, stripe.PaymentIntent):
            # The event's copy is informative only (the platform asks Stripe for the payment
            # itself): a copy missing fields must not fail the event.
            with contextlib.suppress(KeyError, AttributeError):
                payment = _payment(subject)
        dispute = None
        if isinstance(subject, stripe.Dispute):
            intent = subject.payment_intent
            dispute = Dispute(
                id=subject.id,
                payment_reference=intent if isinstance(intent, str) else str(intent and intent.id),
                amount=from_minor_units(subject.amount, subject.currency),
                currency=subject.currency.upper(),
                reason=str(subject.reason),
                status=str(getattr(subject, "status", "") or ""),
            )
        return WebhookEvent(
            id=event.id,
            type=event.type,
            object_id=str(subject["id"]),
            payment=payment,
            dispute=dispute,
        )


def _payment(intent: stripe.PaymentIntent) -> PaymentResult:
    amount = from_minor_units(intent.amount, intent.currency)
    currency = intent.currency.upper()
    status: str = intent.status
    if status == "succeeded":
        return PaymentResult(intent.id, PaymentStatus.SUCCEEDED, amount, currency)
    if status in _PENDING:
        # Two waits are not Stripe's to end: the customer's authentication, and our own
        # confirmation (a charge whose confirm never went out; sending it again finishes it).
        code = status if status in ("requires_action", "requires_confirmation") else None
        message = _WAITING_FOR.get(status)
        return PaymentResult(intent.id, PaymentStatus.PENDING, amount, currency, code, message)
    # Stripe leaves out some empty fields (and localstripe more of them): read with getattr(…, None).
    error = getattr(intent, "last_payment_error", None)
    if status == "canceled":
        code, message = (
            "canceled",
            getattr(intent, "cancellation_reason", None) or "The payment was canceled.",
        )
    elif error is not None:
        code = (
            getattr(error, "decline_code", None) or getattr(error, "code", None) or "payment_failed"
        )
        message = getattr(error, "message", None) or "The payment failed."
    else:
        code, message = "requires_payment_method", "The payment has no usable payment method."
    return PaymentResult(intent.id, PaymentStatus.FAILED, amount, currency, code, message)


def _unsupported(what: str) -> StripeError:
    return StripeError(
        f"{what} are not made through Stripe", retryable=False, code="unsupported_method"
    )


class _Declined(Exception):  # noqa: N818 - an outcome, not a failure
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class _mapped_errors:  # noqa: N801 - used as a statement: `with _mapped_errors():`
    """Turns the SDK's exceptions into the interface's (see the module's table)."""

    def __init__(self, *, reference: str | None = None, declines: bool = False) -> None:
        self.reference = reference
        self.declines = declines

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, _tb: Any
    ) -> None:
        if exc is None or not isinstance(exc, stripe.StripeError):
            return
        raise _translate(exc, self.reference, declines=self.declines) from exc


def _translate(  # noqa: PLR0911 - one return per row of the module's table
    exc: stripe.StripeError, reference: str | None, *, declines: bool
) -> Exception:
    message = exc.user_message or str(exc)
    code = exc.code or ""
    if declines and isinstance(exc, stripe.CardError):
        error = exc.error
        decline = (
            (getattr(error, "decline_code", None) if error is not None else None)
            or code
            or "card_declined"
        )
        return _Declined(message, decline)
    if isinstance(exc, stripe.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, httpx.TimeoutException):
            return StripeTimeoutError(f"Stripe did not answer in time: {message}")
        # Refused before anything was sent: safe to send again. Lost after sending (reset,
        # closed mid-answer): Stripe may have acted, so the outcome must be asked for.
        sent = not isinstance(cause, httpx.ConnectError)
        return StripeError(message, retryable=True, code="provider_unavailable", ambiguous=sent)
    if isinstance(exc, stripe.IdempotencyError):
        return StripeIdempotencyError(message)
    if isinstance(exc, stripe.RateLimitError):
        return StripeError(message, retryable=True, code="rate_limited")
    status = exc.http_status or 0
    if reference is not None and (status == 404 or code == "resource_missing"):
        return StripeNotFoundError(f"no payment {reference}")
    if status >= 500 or isinstance(exc, stripe.APIError):
        # Stripe documents a 500's result as indeterminate: it may have been processed.
        return StripeError(message, retryable=True, code="provider_unavailable", ambiguous=True)
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return StripeError(message, retryable=False, code="provider_misconfigured")
    return StripeError(message, retryable=False, code=code or "invalid_request")
