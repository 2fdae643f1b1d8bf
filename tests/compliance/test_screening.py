"""Sanctions screening: the list shipped as data and loaded by migration 0007, names matched
regardless of word order, case, accents, initials and a middle name, and refusals."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance import audit, screening
from diboas.compliance.audit import AuditContext
from diboas.compliance.screening import RecipientScreeningError, listed_names, normalise_name
from diboas.db.engine import SessionFactory
from tests.compliance.conftest import make_user


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Ivan Petrov", "ivan petrov"),
        ("PETROV, Ivan", "ivan petrov"),
        ("  José   Ramírez  ", "jose ramirez"),
        ("Hélène Dufresnoy-Vasseur", "dufresnoy helene vasseur"),
        ("Łukasz Żmudziński-Wrołek", "lukasz wrolek zmudzinski"),
        ("Søren Krøyberg", "kroyberg soren"),
        ("Hans Straße", "hans strasse"),
        ("Niamh O'Draighneáin", "niamh odraighneain"),
        ("Niamh O\u2019Draighneáin", "niamh odraighneain"),
        ("Viktor A. Zorintsev", "viktor zorintsev"),
        ("Ｆｕｌｌｗｉｄｔｈ Ｎａｍｅ", "fullwidth name"),
        ("Иван Петров", ""),
        ("", ""),
    ],
)
def test_names_are_normalised_for_comparison(name: str, expected: str) -> None:
    assert normalise_name(name) == expected


def test_the_list_file_is_well_formed() -> None:
    entries = listed_names()
    assert len(entries) >= 30
    assert {"OFAC-SDN", "EU", "UN", "UK-HMT"} <= {e.list for e in entries}
    assert all(e.normalized_name and e.country and len(e.country) == 2 for e in entries)
    assert len({(e.list, e.normalized_name) for e in entries}) == len(entries)


async def test_the_migration_loaded_the_list_with_normalised_names(session: AsyncSession) -> None:
    rows = await session.execute(
        text("SELECT list, name, normalized_name, country FROM sanctions_entries")
    )
    stored = {(r.list, r.name, r.normalized_name, r.country) for r in rows}
    expected = {(e.list, e.name, normalise_name(e.name), e.country) for e in listed_names()}
    assert expected <= stored
    assert ("EU", "Zoran Miletić Dragovar", "dragovar miletic zoran", "RS") in stored


@pytest.mark.parametrize(
    ("name", "lists"),
    [
        ("Viktor Alekseyevich Zorintsev", ["OFAC-SDN"]),
        ("zorintsev VIKTOR alekseyevich", ["OFAC-SDN"]),
        ("Helene Marguerite Dufresnoy Vasseur", ["EU"]),
        ("Zoran Miletic Dragovar", ["EU"]),
        ("Lukasz Zmudzinski Wrolek", ["UK-HMT"]),
        ("Pavel Ostrovetsky", ["EU", "OFAC-SDN", "UK-HMT"]),
        # A middle name left out, an initial or another name added: still a match.
        ("Viktor Zorintsev", ["OFAC-SDN"]),
        ("Viktor A. Zorintsev", ["OFAC-SDN"]),
        ("Pavel Ivanovich Ostrovetsky", ["EU", "OFAC-SDN", "UK-HMT"]),
        ("Grace Hopper", []),
        ("Ivan Petrov", []),  # not "Ivan Petrovich Kolesnyar": whole words only
        ("Pavel", []),  # one word alone is too little to refuse on
        ("Zorintsev", []),
        ("Иван Петров", []),
    ],
)
async def test_matches(session: AsyncSession, name: str, lists: list[str]) -> None:
    assert await screening.matches(session, name) == lists


async def test_a_listed_recipient_is_refused(session: AsyncSession) -> None:
    listed = await make_user(session, full_name="Svetlana MARCHUKOVA Yurievna")
    with pytest.raises(RecipientScreeningError) as refused:
        await screening.enforce_recipient(session, listed)
    assert refused.value.status_code == 422
    assert refused.value.code == "recipient_not_allowed"
    # The sender is not told which list.
    assert "EU" not in refused.value.message and refused.value.details == {}


async def test_a_clean_recipient_passes(session: AsyncSession) -> None:
    clean = await make_user(session, full_name="Katherine Johnson")
    await screening.enforce_recipient(session, clean)
    # A name added to the list later is screened from then on.
    await session.execute(
        text(
            "INSERT INTO sanctions_entries (list, name, normalized_name) VALUES ('OFAC-SDN', 'Katherine Johnson', :n)"
        ),
        {"n": normalise_name("Katherine Johnson")},
    )
    with pytest.raises(RecipientScreeningError):
        await screening.enforce_recipient(session, dataclasses.replace(clean))


async def test_a_screening_refusal_is_audited_with_the_lists(
    session: AsyncSession, sessions: SessionFactory
) -> None:
    sender = await make_user(session)
    recipient = await make_user(session, full_name="Gennady Skorlupov")
    context = AuditContext(actor_id=sender.id, actor_role=sender.role)
    await screening.record_refusal(sessions, context, recipient=recipient, reference="tx-1")
    async with sessions() as reader:
        rows = await audit.entries(reader, actor_id=sender.id, action="screening.refused")
    assert len(rows) == 1
    assert rows[0].outcome == "refused"
    assert rows[0].subject_id == str(recipient.id)
    assert rows[0].details == {"movement": "transfer", "lists": ["UK-HMT"], "reference": "tx-1"}
