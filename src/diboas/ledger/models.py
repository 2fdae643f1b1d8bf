"""The ledger's vocabulary: owners, domains, account kinds, and the records it returns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class OwnerType(StrEnum):
    """Who an account belongs to."""

    USER = "user"
    ORGANISATION = "organisation"
    PLATFORM = "platform"


class Domain(StrEnum):
    """The product area an account serves."""

    BANKING = "banking"
    INVESTING = "investing"
    DEFI = "defi"
    PLATFORM = "platform"


class AccountKind(StrEnum):
    """What an account holds. Users and organisations have available, held and owed: ``owed``
    is zero or negative, what they owe the platform after a reversal took back spent money."""

    AVAILABLE = "available"
    HELD = "held"
    OWED = "owed"
    FEES = "fees"
    CLEARING = "clearing"
    EXTERNAL = "external"
    SUSPENSE = "suspense"
    ROUNDING = "rounding"


# The owner of every platform account.
PLATFORM_OWNER_ID = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class Account:
    """A ledger account: one owner, one domain, one asset, one kind."""

    id: int
    owner_type: OwnerType
    owner_id: uuid.UUID
    domain: Domain
    asset: str
    kind: AccountKind
    shard: int
    scale: int


@dataclass(frozen=True, slots=True)
class EntryRef:
    """Where a committed-to-be entry landed: its id and timestamp (its partition key)."""

    id: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Balance:
    """An account's balance now, with the head of its hash chain."""

    account_id: int
    asset: str
    balance: Decimal
    posting_count: int


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of an entry, as stored."""

    entry_id: int
    account_id: int
    account_seq: int
    asset: str
    amount: Decimal
    balance_after: Decimal
    created_at: datetime
