"""Learn articles: short, plain explanations, kept as data (headings and paragraphs of plain
text, escaped like everything else when rendered)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Article:
    """One article: its address, title, summary and sections (heading, paragraphs)."""

    slug: str
    title: str
    summary: str
    sections: tuple[tuple[str, tuple[str, ...]], ...]


ARTICLES: tuple[Article, ...] = (
    Article(
        slug="double-entry-ledger",
        title="Why a double-entry ledger keeps your money safe",
        summary="Every cent that moves is written twice, and the two sides must agree.",
        sections=(
            (
                "Two sides of every movement",
                (
                    "When you send 10 dollars to a friend, your balance goes down by 10 and "
                    "theirs goes up by 10. A double-entry ledger records both sides as one "
                    "entry, and refuses the entry if the sides do not add up to zero.",
                    "Money therefore cannot appear from nowhere or vanish: it can only move "
                    "from one account to another.",
                ),
            ),
            (
                "Rules the database enforces itself",
                (
                    "At diBoaS these rules are checked by the database, not only by the "
                    "application: an unbalanced entry is refused when it is committed, past "
                    "entries can never be edited, and a customer balance can never go below "
                    "zero.",
                    "Every posting also extends a hash chain per account, so any later "
                    "tampering with the history would be detected by the ledger check.",
                ),
            ),
        ),
    ),
    Article(
        slug="how-fees-work",
        title="How our fees are worked out",
        summary="Platform, provider and network fees, shown before you confirm.",
        sections=(
            (
                "Three parts of a fee",
                (
                    "A fee can have up to three parts: the platform fee that diBoaS charges, "
                    "the provider fee that a card network or bank charges us, and a network "
                    "fee for blockchain transactions.",
                    "Each part follows the public fee schedule: a percentage, a fixed "
                    "amount, and sometimes a minimum or a maximum.",
                ),
            ),
            (
                "What is free",
                (
                    "Sending money to another diBoaS user is free, and so is adding money "
                    "from a linked bank account by ACH. Card top-ups, withdrawals, trades "
                    "and DeFi strategies carry the fees listed on the fees page.",
                    "Fees are always rounded to the cent, and a rounding is never more than "
                    "one cent.",
                ),
            ),
        ),
    ),
    Article(
        slug="defi-yield-risks",
        title="DeFi yield: where it comes from, and the risks",
        summary="Yield is paid for risk. Here is what to understand before you start.",
        sections=(
            (
                "Where the yield comes from",
                (
                    "DeFi strategies lend assets to borrowers or provide liquidity to "
                    "exchanges on a blockchain. Borrowers pay interest and traders pay "
                    "fees; part of that is the yield.",
                ),
            ),
            (
                "The risks",
                (
                    "Smart contracts can have bugs, stablecoins can lose their peg, and "
                    "some strategies lock your money for a period. A strategy's risk score "
                    "(1 is lowest, 5 highest) and its lock-up period are part of its description.",
                    "Yield is never guaranteed. Only invest what you can afford to have "
                    "locked up or to lose.",
                ),
            ),
        ),
    ),
)

BY_SLUG = {article.slug: article for article in ARTICLES}
