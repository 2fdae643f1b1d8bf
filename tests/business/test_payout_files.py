"""Reading payout CSV files: what makes a file unreadable, and what a row carries."""

from __future__ import annotations

import pytest

from diboas.business.errors import PayoutFileError
from diboas.business.service.payout_files import read
from diboas.settings import Settings

SETTINGS = Settings(env="test", business_payout_max_rows=3, business_payout_max_bytes=300)


def test_rows_keep_their_line_and_fields() -> None:
    content = (
        "\ufeffRecipient_Email, Amount ,currency,note\r\n"
        "a@example.com,1.00,USD,first\r\n"
        "\r\n"
        'b@example.com, 2 ,USD,"with, comma"\r\n'
        "c@example.com,3.00,USD\r\n"
    ).encode()
    rows = read(content, SETTINGS)
    assert [(r.line, r.recipient_email, r.amount, r.note, r.problem) for r in rows] == [
        (2, "a@example.com", "1.00", "first", None),
        (4, "b@example.com", "2", "with, comma", None),
        (5, "c@example.com", "3.00", None, None),
    ]


def test_a_three_column_header_is_accepted_and_extra_fields_are_a_row_problem() -> None:
    rows = read(b"recipient_email,amount,currency\na@example.com,1,USD,x,y\n", SETTINGS)
    assert rows[0].problem == "expected 3 or 4 fields, found 5"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"recipient_email,amount\na@example.com,1\n",
        b"recipient_email,amount,currency,note\n",
        b"recipient_email,amount,currency,note\n" + b"a@example.com,1,USD,\n" * 4,
        b"recipient_email,amount,currency,note\n" + b"a" * 300,
        b"recipient_email,amount,currency,note\n\xff\xfe,1,USD,\n",
        b'recipient_email,amount,currency,note\na@example.com,1,USD,"open\n',
    ],
)
def test_unreadable_files_are_refused(content: bytes) -> None:
    with pytest.raises(PayoutFileError):
        read(content, SETTINGS)
