"""Balance response bodies. Every amount is a decimal string: balances at their asset's scale,
USD values to the cent."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from diboas.balances.service import BalanceSheet
from diboas.kit.money import format_amount

_USD_SCALE = 2


class DomainTotalOut(BaseModel):
    """What a domain's assets are worth in USD."""

    total_usd: str


class DomainsOut(BaseModel):
    """The three customer domains, always all present."""

    banking: DomainTotalOut
    investing: DomainTotalOut
    defi: DomainTotalOut


class AssetBalanceOut(BaseModel):
    """One asset in one domain: available and held (asset scale) and their USD value."""

    asset: str
    domain: str
    available: str
    held: str
    value_usd: str
    owed: str = Field(
        default="0", description="Owed to the platform after a reversal (the account is frozen)"
    )
    priced_at: datetime | None = Field(
        default=None, description="When the price used for value_usd was observed"
    )
    price_stale: bool = Field(
        default=False,
        description="value_usd was computed from a price older than the allowed age",
    )


class BalancesOut(BaseModel):
    """The caller's balances at ``as_of``; ``final`` once no commit can change them."""

    total_usd: str
    as_of: datetime
    final: bool
    price_stale: bool = Field(
        default=False, description="Some value was computed from a stale price (see assets)"
    )
    domains: DomainsOut
    assets: list[AssetBalanceOut]

    @classmethod
    def of(cls, sheet: BalanceSheet) -> BalancesOut:
        """The response for a valued balance sheet."""

        def usd(value: Decimal) -> str:
            return format_amount(value, _USD_SCALE)

        return cls(
            total_usd=usd(sheet.total_usd),
            as_of=sheet.as_of,
            final=sheet.final,
            price_stale=sheet.price_stale,
            domains=DomainsOut(
                **{
                    name: DomainTotalOut(total_usd=usd(total))
                    for name, total in sheet.domains.items()
                }
            ),
            assets=[
                AssetBalanceOut(
                    asset=a.asset,
                    domain=a.domain,
                    available=format_amount(a.available, a.scale),
                    held=format_amount(a.held, a.scale),
                    value_usd=usd(a.value_usd),
                    owed=format_amount(a.owed, a.scale),
                    priced_at=a.priced_at,
                    price_stale=a.price_stale,
                )
                for a in sheet.assets
            ],
        )
