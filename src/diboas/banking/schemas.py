"""Banking request and response bodies.

Amounts travel as decimal strings; they are parsed against their currency's scale by the
service (``kit.money.parse_amount``), which refuses numbers, exponents, zero and negatives.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, EmailStr, Field, Strict, StringConstraints, model_validator
from pydantic.functional_validators import AfterValidator

from diboas.kit.schemas import StrictModel, Text

TransactionType = Literal[
    "deposit",
    "withdrawal",
    "transfer_out",
    "transfer_in",
    "buy",
    "sell",
    "defi_deposit",
    "defi_withdraw",
    "reversal",
    "crypto_deposit",
    "reinstatement",
]
TransactionStatus = Literal["pending", "processing", "completed", "failed", "reversed"]
DepositMethod = Literal["card", "ach"]

# JSON carries ids as strings: parse them (the strict models would only take UUID objects).
Id = Annotated[uuid.UUID, Strict(False)]
Amount = Annotated[str, Field(min_length=1, max_length=40, examples=["25.00"])]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,12}$"), Field(examples=["USD"])]
PaymentMethodToken = Annotated[
    str, StringConstraints(pattern=r"^pm_[A-Za-z0-9_]{1,100}$"), Field(examples=["pm_card_visa"])
]


def _aba_checksum(value: str) -> str:
    # ABA routing numbers carry a check digit: 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9) ≡ 0 (mod 10).
    digits = [int(c) for c in value]
    total = sum(w * d for w, d in zip((3, 7, 1) * 3, digits, strict=True))
    if total % 10:
        raise ValueError("not a valid ABA routing number (check digit)")
    return value


RoutingNumber = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{9}$"),
    AfterValidator(_aba_checksum),
    Field(examples=["011000015"]),
]
AccountNumber = Annotated[
    str, StringConstraints(pattern=r"^[0-9]{4,17}$"), Field(examples=["000123456789"])
]


class DepositIn(StrictModel):
    """Add money from a card (default; ``payment_method`` token, default ``pm_card_visa``) or
    by ACH debit from a linked bank account (``bank_account_id``)."""

    amount: Amount
    currency: Currency
    method: DepositMethod = "card"
    payment_method: PaymentMethodToken | None = None
    bank_account_id: Id | None = None
    quote_id: Id | None = None

    @model_validator(mode="after")
    def _source_matches_method(self) -> Self:
        if self.method == "ach" and self.bank_account_id is None:
            raise ValueError("an ACH deposit needs bank_account_id")
        if self.method == "ach" and self.payment_method is not None:
            raise ValueError("payment_method is for card deposits")
        if self.method == "card" and self.bank_account_id is not None:
            raise ValueError("bank_account_id is for ACH deposits")
        return self


class WithdrawalIn(StrictModel):
    """Send money to a linked bank account (ACH payout)."""

    amount: Amount
    currency: Currency
    bank_account_id: Id
    quote_id: Id | None = None


class TransferIn(StrictModel):
    """Send money to another diBoaS user, by email; completes at once."""

    recipient_email: EmailStr
    amount: Amount
    currency: Currency
    note: Text(280) | None = None  # type: ignore[valid-type]
    quote_id: Id | None = None


class BankAccountIn(StrictModel):
    """Link a US bank account (numbers are encrypted at rest and never shown again)."""

    holder_name: Text(200)  # type: ignore[valid-type]
    bank_name: Text(200)  # type: ignore[valid-type]
    routing_number: RoutingNumber
    account_number: AccountNumber


class SagaStepOut(BaseModel):
    """One step of a money movement's saga: accepted, provider_requested, settled…"""

    state: str
    at: datetime
    detail: dict[str, Any]


class ChainDepositOut(BaseModel):
    """Where a crypto deposit is on chain: credited once ``confirmations`` reaches
    ``required_confirmations``; ``chain_status`` seen, credited or orphaned (removed by a
    reorganisation; it may be mined again)."""

    chain_id: int
    tx_hash: str
    log_index: int
    block_number: int
    confirmations: int
    required_confirmations: int
    chain_status: str


class TransactionOut(BaseModel):
    """A money movement as its owner sees it; poll it at ``/api/v1/transactions/{id}``."""

    id: uuid.UUID
    type: TransactionType
    status: TransactionStatus
    domain: str
    amount: str
    currency: str
    fee: str
    fee_breakdown: dict[str, str] | None = None
    method: str | None = None
    counterparty_email: str | None = None
    note: str | None = None
    related_transaction_id: uuid.UUID | None = None
    bank_account_id: uuid.UUID | None = None
    quote_id: uuid.UUID | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    saga_state: str | None = Field(
        default=None, description="Where the movement's saga is (movements through a provider)"
    )
    steps: list[SagaStepOut] | None = Field(
        default=None, description="Every step of the saga, oldest first (single reads only)"
    )
    chain: ChainDepositOut | None = Field(
        default=None, description="A crypto deposit's transaction on chain and confirmations"
    )
    organisation_id: uuid.UUID | None = Field(
        default=None,
        description="The organisation whose treasury this moved, when you acted as its admin "
        "(a funding from your balance, or the treasury's DeFi investment or withdrawal, which "
        "moves no money of yours)",
    )


class TransactionPage(BaseModel):
    """One page of history, newest first; pass ``next_cursor`` back for the next page."""

    items: list[TransactionOut]
    next_cursor: str | None


class BankAccountOut(BaseModel):
    """A linked bank account, with its number masked."""

    id: uuid.UUID
    holder_name: str
    bank_name: str
    routing_number: str
    account_number_masked: str
    status: str
    created_at: datetime


class RefundIn(StrictModel):
    """Refund a completed card deposit to the card: all of it, or ``amount`` of it."""

    amount: Amount | None = None
    reason: Annotated[str, StringConstraints(min_length=3, max_length=500)]
