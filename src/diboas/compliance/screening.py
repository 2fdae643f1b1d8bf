"""Sanctions screening: recipients are checked against the sanctions list kept as data
(``sanctions_entries``, loaded from compliance/data by a migration)."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.identity.repository import User
from diboas.kit.errors import DomainError


class RecipientScreeningError(DomainError):
    """The recipient matches the sanctions list: the movement is refused (and reviewed)."""

    status_code = 422
    code = "recipient_not_allowed"


def normalise_name(name: str) -> str:
    """The form names are compared in: ASCII letters, lower case, words sorted.

    Sorting the words matches "Petrov Ivan" with "Ivan Petrov"; dropping accents matches
    "José" with "Jose".
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z]+", ascii_name.lower())
    return " ".join(sorted(words))


async def matches(session: AsyncSession, name: str) -> list[str]:
    """The lists on which ``name`` appears (empty when it does not)."""
    rows = await session.execute(
        text(
            "SELECT DISTINCT list FROM sanctions_entries WHERE normalized_name = :n ORDER BY list"
        ),
        {"n": normalise_name(name)},
    )
    return list(rows.scalars())


async def enforce_recipient(session: AsyncSession, recipient: User) -> None:
    """Refuse to pay a recipient on a sanctions list."""
    lists = await matches(session, recipient.full_name)
    if lists:
        # Do not tell the sender which list: that is for the compliance review.
        raise RecipientScreeningError("this recipient cannot receive payments")
