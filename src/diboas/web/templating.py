"""One Jinja2 environment for every page, built once with the app.

Autoescaping is on for every template (``.html``): user-supplied text is escaped wherever it
is printed, and nothing in the templates marks user text safe. ``auto_reload`` is off, so a
template is compiled on first use and never looked at on disk again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from diboas.kit.money import round_for_display
from diboas.web.assets import Assets

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def money(value: Decimal | str, currency: str = "USD", scale: int | None = None) -> str:
    """An amount for people: thousands separated, the currency after (``1,234.50 USD``),
    at the asset's scale when given, else with the decimals the value carries."""
    amount = Decimal(value)
    if scale is None:
        exponent = amount.as_tuple().exponent
        scale = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return f"{round_for_display(amount, scale):,.{scale}f} {currency}"


def usd(value: Decimal | str) -> str:
    """A USD figure with its sign: ``$1,234.50``."""
    amount = round_for_display(Decimal(value), 2)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


def when(value: datetime | None) -> str:
    """An instant in UTC, to the minute (the pages say UTC; no client clock involved)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def when_seconds(value: datetime) -> str:
    """An instant in UTC to the second (quote expiries)."""
    return value.astimezone(UTC).strftime("%H:%M:%S UTC")


def percent(value: Decimal) -> str:
    """A fee rate as the schedule stores it (2.9 means 2.9 %), without trailing zeros."""
    shown = Decimal(value).normalize()
    return f"{shown:f} %"


TYPE_LABELS = {
    "deposit": "Deposit",
    "withdrawal": "Withdrawal",
    "transfer_out": "Sent",
    "transfer_in": "Received",
    "buy": "Buy",
    "sell": "Sell",
    "defi_deposit": "DeFi deposit",
    "defi_withdraw": "DeFi withdrawal",
    "reversal": "Reversal",
    "crypto_deposit": "Crypto deposit",
    "reinstatement": "Chargeback won back",
}


def type_label(transaction_type: str) -> str:
    """How a person reads a transaction's type (a type added later still reads as words)."""
    return TYPE_LABELS.get(transaction_type, transaction_type.replace("_", " ").capitalize())


def accounts_options(accounts: list[Any]) -> list[tuple[str, str]]:
    """Select options for linked bank accounts (masked numbers only)."""
    return [(str(a.id), f"{a.bank_name} {a.account_number_masked}") for a in accounts]


def type_options(types: list[str]) -> list[tuple[str, str]]:
    return [(t, type_label(t)) for t in types]


def status_options(statuses: list[str]) -> list[tuple[str, str]]:
    return [(s, s.capitalize()) for s in statuses]


def create_environment(assets: Assets) -> Environment:
    """The environment every page renders with."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        auto_reload=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        cache_size=-1,  # keep every compiled template
    )
    env.globals["static_url"] = assets.url
    env.globals["accounts_options"] = accounts_options
    env.globals["type_options"] = type_options
    env.globals["type_label"] = type_label
    env.globals["status_options"] = status_options
    env.filters["money"] = money
    env.filters["usd"] = usd
    env.filters["when"] = when
    env.filters["when_seconds"] = when_seconds
    env.filters["percent"] = percent
    return env


def render_text(env: Environment, template: str, context: dict[str, Any]) -> str:
    """The HTML of ``template`` with ``context``."""
    return env.get_template(template).render(context)
