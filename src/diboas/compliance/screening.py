"""Sanctions screening: recipients are checked against the sanctions list kept as data
(``compliance/data/sanctions.csv``, loaded into ``sanctions_entries`` by migration 0007).

A name matches an entry when both normalise to the same words in any order, or when one holds
every word of the other and the shorter has at least two words — so a middle name added or
left out does not slip past ("Viktor Zorintsev" matches "Viktor Alekseyevich Zorintsev").
Screening refuses on a possible match; clearing a false positive is a compliance review.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
import uuid
from dataclasses import dataclass
from importlib.resources import files

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance import audit
from diboas.compliance.audit import AuditContext
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.identity.repository import User
from diboas.kit.errors import DomainError

SANCTIONS_FILE = "sanctions.csv"

# Letters Unicode does not decompose into a base letter plus accents (casefold already turns
# "ß" into "ss").
_TRANSLITERATE = str.maketrans(
    {"æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i", "ħ": "h"}
)
# Apostrophes join the parts of a name ("O'Brien" is one word, as "OBrien" would be).
_APOSTROPHES = re.compile("['\u2019\u02bc`\u00b4]")


class RecipientScreeningError(DomainError):
    """The recipient matches the sanctions list: the movement is refused (and reviewed)."""

    status_code = 422
    code = "recipient_not_allowed"


def normalise_name(name: str) -> str:
    """The form names are compared in: ASCII letters, lower case, words sorted.

    Sorting the words matches "Petrov Ivan" with "Ivan Petrov"; dropping accents matches
    "José" with "Jose"; initials are left out ("Viktor A. Zorintsev" is "viktor zorintsev").
    Migration 0007 stored this form of every listed name: a change here needs a migration
    that recomputes ``sanctions_entries.normalized_name``.
    """
    folded = _APOSTROPHES.sub("", name.casefold()).translate(_TRANSLITERATE)
    ascii_name = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z]{2,}", ascii_name)
    return " ".join(sorted(words))


_MATCHES = text("""
    SELECT DISTINCT list FROM sanctions_entries
     WHERE normalized_name = :name
        OR (cardinality(CAST(:words AS text[])) >= 2
            AND string_to_array(normalized_name, ' ') @> CAST(:words AS text[]))
        OR (string_to_array(normalized_name, ' ') <@ CAST(:words AS text[])
            AND cardinality(string_to_array(normalized_name, ' ')) >= 2)
     ORDER BY list
""")


async def matches(session: AsyncSession, name: str) -> list[str]:
    """The lists on which ``name`` appears (empty when it does not)."""
    normalised = normalise_name(name)
    if not normalised:
        return []
    rows = await session.execute(_MATCHES, {"name": normalised, "words": normalised.split(" ")})
    return list(rows.scalars())


async def enforce_recipient(session: AsyncSession, recipient: User) -> None:
    """Refuse to pay a recipient on a sanctions list.

    The caller's transaction rolls back with the refusal; record it with ``record_refusal``.
    """
    lists = await matches(session, recipient.full_name)
    if lists:
        # Do not tell the sender which list: that is for the compliance review.
        raise RecipientScreeningError("this recipient cannot receive payments")


async def record_refusal(
    sessions: SessionFactory,
    context: AuditContext,
    *,
    recipient: User,
    movement: str = "transfer",
    reference: str | uuid.UUID | None = None,
) -> None:
    """Audit a screening refusal (``screening.refused``) in a transaction of its own.

    Call it after ``enforce_recipient`` raised, once the movement's transaction has rolled
    back; ``context`` names the sender. The row names the lists matched, for the review.
    """

    async def write(session: AsyncSession) -> None:
        await audit.record(
            session,
            context,
            "screening.refused",
            outcome="refused",
            subject_type="user",
            subject_id=recipient.id,
            details={
                "movement": movement,
                "lists": await matches(session, recipient.full_name),
                "reference": None if reference is None else str(reference),
            },
        )

    await run_in_transaction(sessions, write)


@dataclass(frozen=True, slots=True)
class ListedName:
    """One row of the sanctions list file."""

    list: str
    name: str
    country: str | None

    @property
    def normalized_name(self) -> str:
        return normalise_name(self.name)


def listed_names() -> list[ListedName]:
    """The sanctions list shipped with the package (``compliance/data/sanctions.csv``)."""
    content = files("diboas.compliance").joinpath("data", SANCTIONS_FILE).read_text("utf-8")
    names: list[ListedName] = []
    for line, row in enumerate(csv.DictReader(io.StringIO(content)), start=2):
        entry = ListedName(
            list=(row["list"] or "").strip(),
            name=(row["name"] or "").strip(),
            country=(row["country"] or "").strip() or None,
        )
        if not entry.list or not entry.normalized_name:
            raise ValueError(f"{SANCTIONS_FILE} line {line}: a list and a name are required")
        if entry.country is not None and not re.fullmatch(r"[A-Z]{2}", entry.country):
            raise ValueError(f"{SANCTIONS_FILE} line {line}: country must be ISO 3166 alpha-2")
        names.append(entry)
    return names
