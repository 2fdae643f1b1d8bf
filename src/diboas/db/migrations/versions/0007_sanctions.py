"""Sanctions list: the entries of compliance/data/sanctions.csv, and an index for matching
names by their words.

The names are stored with ``normalized_name`` computed by ``screening.normalise_name`` itself,
so what screening compares against is what it computes for a recipient.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from diboas.compliance.screening import listed_names

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Screening also matches a name holding every word of a listed one (or the other way
    # round): array containment on the words, which a GIN index answers.
    op.execute(
        "CREATE INDEX sanctions_entries_words ON sanctions_entries "
        "USING gin (string_to_array(normalized_name, ' '))"
    )
    op.get_bind().execute(
        text("""
            INSERT INTO sanctions_entries (list, name, normalized_name, country)
            VALUES (:list, :name, :normalized_name, :country)
        """),
        [
            {
                "list": entry.list,
                "name": entry.name,
                "normalized_name": entry.normalized_name,
                "country": entry.country,
            }
            for entry in listed_names()
        ],
    )


def downgrade() -> None:
    bind = op.get_bind()
    for entry in listed_names():
        bind.execute(
            text("DELETE FROM sanctions_entries WHERE list = :list AND name = :name"),
            {"list": entry.list, "name": entry.name},
        )
    op.execute("DROP INDEX sanctions_entries_words")
