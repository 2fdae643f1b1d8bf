"""Whose DeFi money a position is: a user's own, or an organisation's treasury.

Everything DeFi does with money — the hold, the position, the ledger's ``defi`` account, the
banking account a withdrawal pays into, the risk profile — follows the owner. The person who
asked (a user, or an organisation's admin) is the actor; for a user the two are the same.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from diboas.ledger.models import OwnerType


@dataclass(frozen=True, slots=True)
class Owner:
    """The owner of DeFi positions: ``OwnerType.USER`` or ``OwnerType.ORGANISATION``."""

    type: OwnerType
    id: uuid.UUID

    @classmethod
    def user(cls, user_id: uuid.UUID) -> Owner:
        return cls(OwnerType.USER, user_id)

    @classmethod
    def organisation(cls, organisation_id: uuid.UUID) -> Owner:
        return cls(OwnerType.ORGANISATION, organisation_id)

    @property
    def is_organisation(self) -> bool:
        return self.type is OwnerType.ORGANISATION

    def columns(self) -> dict[str, uuid.UUID | None]:
        """The position's owner columns (exactly one set: a CHECK in the table says so)."""
        return {
            "user_id": None if self.is_organisation else self.id,
            "organisation_id": self.id if self.is_organisation else None,
        }
