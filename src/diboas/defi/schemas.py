"""DeFi request and response bodies. Amounts travel as decimal strings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, StringConstraints, model_validator

from diboas.banking.schemas import DepositMethod, Id, PaymentMethodToken
from diboas.kit.schemas import StrictModel

Amount = Annotated[str, Field(min_length=1, max_length=40, examples=["250.00"])]
StrategyId = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9-]{2,40}$"), Field(examples=["usdc-core"])
]


class StrategyOut(BaseModel):
    """A strategy of the catalog. ``apy`` is a fraction (0.05 = 5 %); ``apy_source`` says
    whether it is derived from the vault's share price history or the configured figure."""

    id: str
    name: str
    description: str
    protocol: str
    asset: str
    apy: str
    apy_source: str
    share_price: str | None
    risk_score: int
    lockup_days: int
    min_amount: str
    currency: str
    available: bool


class RiskProfileIn(StrictModel):
    """The highest strategy risk score (1–5) you accept without acknowledging it."""

    max_risk_score: Annotated[int, Field(ge=1, le=5)]


class RiskProfileOut(BaseModel):
    """Your risk profile; ``max_risk_score`` is 2 by default (``source`` says which)."""

    max_risk_score: int
    source: str


class FundingIn(StrictModel):
    """Pay for the investment with a deposit made in the same request: a card (``payment_method``
    token, default ``pm_card_visa``) or an ACH debit (``bank_account_id``). The deposit is
    grossed up so that, after its own fee, it covers the amount, fee and gas."""

    method: DepositMethod = "card"
    payment_method: PaymentMethodToken | None = None
    bank_account_id: Id | None = None

    @model_validator(mode="after")
    def _source_matches_method(self) -> Self:
        # The same rule as a banking deposit's, checked here so a mismatch is a 422.
        if self.method == "ach" and (self.bank_account_id is None or self.payment_method):
            raise ValueError("an ACH deposit needs bank_account_id (and no payment_method)")
        if self.method == "card" and self.bank_account_id is not None:
            raise ValueError("bank_account_id is for ACH deposits")
        return self


class InvestIn(StrictModel):
    """Invest ``amount`` USD into a strategy: from your banking balance, or from a deposit
    made in the same request (``funding``). A strategy riskier than your profile needs
    ``acknowledge_risk: true``."""

    strategy_id: StrategyId
    amount: Amount
    acknowledge_risk: bool = False
    funding: FundingIn | None = None


class WithdrawIn(StrictModel):
    """Withdraw ``amount`` USD of a position's value; an empty body withdraws all of it."""

    amount: Amount | None = None


class FeeOut(BaseModel):
    """A fee by component, in USD; ``network`` is gas."""

    platform: str
    provider: str
    network: str


class MovementOut(BaseModel):
    """A DeFi money movement: ``id`` is its transaction (pollable at
    ``/api/v1/transactions/{id}``), ``fee`` in USD (estimated until it completes)."""

    id: uuid.UUID
    status: str
    type: str
    position_id: uuid.UUID
    strategy_id: str
    amount: str
    currency: str
    fee: str
    fee_breakdown: FeeOut
    created_at: datetime


class PositionOut(BaseModel):
    """A position: vault shares owned through the platform's omnibus wallet, valued at the
    vault's share price now. Amounts in the strategy's asset."""

    id: uuid.UUID
    strategy_id: str
    status: str
    asset: str
    shares: str
    withdrawing_shares: str
    principal: str
    value: str
    accrued_yield: str
    value_usd: str
    locked_until: datetime
    deposit_transaction_id: uuid.UUID
    created_at: datetime


class PositionsOut(BaseModel):
    """Your positions, newest first, with their total value in USD."""

    items: list[PositionOut]
    total_value_usd: str


class VaultCheckOut(BaseModel):
    """One vault: the omnibus wallet's shares against positions + platform residue."""

    vault: str
    omnibus_shares: str
    position_shares: str
    platform_shares: str
    difference: str


class ReconciliationOut(BaseModel):
    """Whether the records agree with the vaults (``ok``), and what needs an operator."""

    ok: bool
    vaults: list[VaultCheckOut]
    unfinished_batches: list[str]
    ambiguous_withdrawals: list[str]
    booked_usdc: str
    ledger_usdc: str


class ResolveBatchIn(StrictModel):
    """What an operator found: the batch was ``deposited`` (minting ``shares``) or
    ``not_deposited``."""

    outcome: Literal["deposited", "not_deposited"]
    shares: Amount | None = None

    @model_validator(mode="after")
    def _shares_with_deposit(self) -> Self:
        if (self.outcome == "deposited") != (self.shares is not None):
            raise ValueError("shares are given exactly when the batch was deposited")
        return self


class ResolveWithdrawalIn(StrictModel):
    """What an operator found: the shares were ``redeemed`` (for ``assets``) or
    ``not_redeemed``."""

    outcome: Literal["redeemed", "not_redeemed"]
    assets: Amount | None = None

    @model_validator(mode="after")
    def _assets_with_redemption(self) -> Self:
        if (self.outcome == "redeemed") != (self.assets is not None):
            raise ValueError("assets are given exactly when the shares were redeemed")
        return self


class ResolvedOut(BaseModel):
    """What the resolution did: ``settled`` or ``compensated``."""

    outcome: str
