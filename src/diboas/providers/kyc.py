"""Identity verification (KYC): the provider interface and the deterministic sandbox.

Persona and Jumio adapters arrive with the providers issue; until then the sandbox is the only
implementation. Like a vendor sandbox it decides by magic values (DESIGN §4), never at random:

| last name | decision |
|---|---|
| ``Reject`` | rejected, tier 0 |
| ``Review`` | pending_review, tier 0 (a person would look at it) |
| anything else | approved, tier 1 |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol

from diboas.kit.ids import uuid7
from diboas.settings import Settings

KycStatus = Literal["approved", "rejected", "pending_review"]
DocumentType = Literal["passport", "national_id", "drivers_license"]


@dataclass(frozen=True, slots=True)
class KycApplicant:
    """What the person submitted, already validated (adult, known country, document shape)."""

    first_name: str
    last_name: str
    date_of_birth: date
    country: str
    address: str
    document_type: DocumentType
    document_number: str

    def __repr__(self) -> str:
        # Keeps the document number and address out of logs and tracebacks.
        return f"KycApplicant(country={self.country!r}, document_type={self.document_type!r})"


@dataclass(frozen=True, slots=True)
class KycDecision:
    """A provider's answer: the status, the tier it grants, its own reference, and why."""

    status: KycStatus
    tier: int
    provider_reference: str
    reason: str | None = None


class KycProvider(Protocol):
    """Checks an applicant's identity and decides."""

    @property
    def name(self) -> str:
        """The provider's name as stored with each submission."""
        ...

    async def submit(self, applicant: KycApplicant) -> KycDecision:
        """Send the applicant for verification and return the decision."""
        ...


class SandboxKycProvider:
    """Decides at once from the last name (see the module docstring)."""

    name = "sandbox"

    async def submit(self, applicant: KycApplicant) -> KycDecision:
        reference = f"sbx_inq_{uuid7().hex}"
        magic = applicant.last_name.strip().casefold()
        if magic == "reject":
            return KycDecision(
                status="rejected",
                tier=0,
                provider_reference=reference,
                reason="the identity document could not be verified",
            )
        if magic == "review":
            return KycDecision(
                status="pending_review",
                tier=0,
                provider_reference=reference,
                reason="the submission needs a manual review",
            )
        return KycDecision(status="approved", tier=1, provider_reference=reference)


def kyc_provider(settings: Settings) -> KycProvider:
    """The KYC provider the settings choose.

    Only the sandbox exists until the providers issue adds the Persona and Jumio adapters
    (and the setting that picks between them).
    """
    del settings  # the choice will be made from settings once there is a choice to make
    return SandboxKycProvider()
