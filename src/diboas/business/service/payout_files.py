"""Reading a payout CSV: ``recipient_email,amount,currency,note`` (``note`` may be left out).

The file as a whole is refused (422 ``invalid_payout_file``) when it cannot be a payout file:
too large, not UTF-8, NUL bytes, a wrong header, no rows or too many. Everything about a row
is judged per row by the validation (``service.payouts``), so one upload reports every
problem at once.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from diboas.business.errors import PayoutFileError
from diboas.settings import Settings

HEADER = ("recipient_email", "amount", "currency", "note")
# Longest kept text per field (what the table holds); longer values are reported invalid.
FIELD_LIMITS = {"recipient_email": 320, "amount": 64, "currency": 16, "note": 500}


@dataclass(frozen=True, slots=True)
class RawRow:
    """One data row as read: its line in the file and its fields (None when missing), or the
    reason it cannot be read."""

    line: int
    recipient_email: str
    amount: str
    currency: str
    note: str | None
    problem: str | None = None


def _clip(value: str, field: str) -> str:
    return value[: FIELD_LIMITS[field]]


def read(content: bytes, settings: Settings) -> list[RawRow]:
    """The rows of a payout file, or PayoutFileError."""
    if len(content) > settings.business_payout_max_bytes:
        raise PayoutFileError(
            "the file is too large",
            details={"max_bytes": settings.business_payout_max_bytes},
        )
    try:
        decoded = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PayoutFileError("the file must be UTF-8 text") from None
    if "\x00" in decoded:
        raise PayoutFileError("the file contains NUL characters")
    reader = csv.reader(io.StringIO(decoded, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or tuple(h.strip().lower() for h in header) not in (HEADER, HEADER[:3]):
            raise PayoutFileError(
                "the first line must be the header " + ",".join(HEADER),
                details={"expected": list(HEADER)},
            )
        rows = [
            _row(reader.line_num, fields) for fields in reader if any(f.strip() for f in fields)
        ]
    except csv.Error as error:
        raise PayoutFileError(
            f"the file is not valid CSV (line {reader.line_num})", details={"problem": str(error)}
        ) from None
    if not rows:
        raise PayoutFileError("the file has no payout rows")
    if len(rows) > settings.business_payout_max_rows:
        raise PayoutFileError(
            "the file has too many rows: split it",
            details={"max_rows": settings.business_payout_max_rows, "rows": len(rows)},
        )
    return rows


def _row(line: int, fields: list[str]) -> RawRow:
    values = [f.strip() for f in fields]
    problem = None
    if len(values) not in (3, 4):
        problem = f"expected 3 or 4 fields, found {len(values)}"
    padded = [*values, "", "", "", ""][:4]
    return RawRow(
        line=line,
        recipient_email=_clip(padded[0], "recipient_email"),
        amount=_clip(padded[1], "amount"),
        currency=_clip(padded[2], "currency"),
        note=padded[3] or None,
        problem=problem,
    )
