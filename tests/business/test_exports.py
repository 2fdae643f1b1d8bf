"""CSV cells are escaped and defused against formula injection."""

from __future__ import annotations

import csv
import io

import pytest

from diboas.business.service.exports import safe_cell, to_csv


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+33 6 00", "'+33 6 00"),
        ("-2", "'-2"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=cmd", "'\t=cmd"),
        ("\r=cmd", "'\r=cmd"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (None, ""),
        (12, "12"),
    ],
)
def test_safe_cell(value: object, expected: str) -> None:
    assert safe_cell(value) == expected


def test_to_csv_quotes_separators_quotes_and_line_breaks() -> None:
    hostile = ['say "hi", then', "two\nlines", '=HYPERLINK("x")']
    document = to_csv(["a", "b", "c"], [hostile])
    assert document.endswith("\r\n")
    (row,) = list(csv.DictReader(io.StringIO(document, newline="")))
    assert row == {"a": 'say "hi", then', "b": "two\nlines", "c": '\'=HYPERLINK("x")'}
