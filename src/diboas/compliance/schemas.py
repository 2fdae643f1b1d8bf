"""Compliance request and response bodies: KYC submissions, limits, the audit log."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, StringConstraints, field_validator

from diboas.kit.schemas import StrictModel, Text
from diboas.providers.kyc import DocumentType, KycStatus

ADULT_AGE = 18
# Older than anyone alive: a birth date before this is a typing mistake.
MAX_AGE = 130

# ISO 3166-1 alpha-2, the officially assigned codes (as listed by the tz database's
# iso3166.tab, which is in the public domain).
COUNTRY_CODES = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
    DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
    GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
    KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
    MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
    US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
    """.split()  # noqa: SIM905 - 249 codes read (and diff) better as a block than as a list
)

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def _iso_date(value: Any) -> date:
    # JSON has no date type: only the exact YYYY-MM-DD form is taken (no times, no week
    # dates, no "20000101").
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("is not a calendar date") from None


def _country(value: str) -> str:
    if value not in COUNTRY_CODES:
        raise ValueError("must be an ISO 3166-1 alpha-2 country code in upper case, e.g. US")
    return value


def age_on(born: date, today: date) -> int:
    """Whole years from ``born`` to ``today``."""
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class KycSubmissionIn(StrictModel):
    """Identity details for verification. Only the document's last four characters are kept
    by diBoaS; the rest goes to the KYC provider."""

    first_name: Text(100)  # type: ignore[valid-type]
    last_name: Text(100)  # type: ignore[valid-type]
    date_of_birth: IsoDate
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    address: Text(300, min_length=5)  # type: ignore[valid-type]
    document_type: DocumentType
    document_number: Annotated[
        str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9]{5,20}$")
    ]

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        return _country(value)

    @field_validator("date_of_birth")
    @classmethod
    def _adult(cls, value: date) -> date:
        today = datetime.now(UTC).date()
        if value > today:
            raise ValueError("must not be in the future")
        age = age_on(value, today)
        if age < ADULT_AGE:
            raise ValueError(f"you must be at least {ADULT_AGE} years old")
        if age > MAX_AGE:
            raise ValueError("is not a plausible date of birth")
        return value


class KycSubmissionOut(BaseModel):
    """A KYC submission and its decision."""

    id: uuid.UUID
    status: KycStatus
    tier: int
    reason: str | None
    provider: str
    country: str
    document_type: str
    document_last4: str
    created_at: datetime
    decided_at: datetime | None


class LimitOut(BaseModel):
    """One limit in USD: the limit, what is used this period, what remains (decimal strings)."""

    limit: str
    used: str
    remaining: str


class LimitsOut(BaseModel):
    """The caller's KYC tier and, per movement and period, their limits (USD)."""

    tier: int
    kyc_status: str
    currency: Literal["USD"] = "USD"
    can_move_money: bool
    limits: dict[str, dict[str, LimitOut]]


class AuditEntryOut(BaseModel):
    """One audit-log row."""

    id: int
    created_at: datetime
    actor_id: uuid.UUID | None
    actor_role: str | None
    action: str
    outcome: str
    subject_type: str | None
    subject_id: str | None
    ip: str | None
    request_id: str | None
    details: dict[str, Any]


class AuditLogPage(BaseModel):
    """Audit rows, newest first; pass ``next_before_id`` as ``before_id`` for the next page."""

    items: list[AuditEntryOut]
    next_before_id: int | None


class KycReviewIn(StrictModel):
    """A reviewer's decision on a submission left for manual review."""

    decision: Literal["approve", "reject"]
    reason: Text(500) | None = None  # type: ignore[valid-type]
