"""Identity verification (KYC): the provider interface and the deterministic sandbox.

The real adapters are ``kyc_persona.PersonaKyc`` and ``kyc_jumio.JumioKyc``; the same
conformance suite (tests/providers/test_kyc_conformance.py) runs all three. Like a vendor
sandbox, this one decides by magic values (DESIGN §4), never at random:

| last name | decision |
|---|---|
| ``Reject`` | rejected, tier 0 |
| ``Review`` | pending_review, tier 0 (a person would look at it) |
| anything else | approved, tier 1 |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Literal, Protocol

from diboas.kit.ids import uuid7
from diboas.settings import Settings

if TYPE_CHECKING:
    pass

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
    """The KYC provider the settings choose (``DIBOAS_KYC_PROVIDER``: sandbox, persona, jumio)."""
    if settings.kyc_provider == "sandbox":
        return SandboxKycProvider()
    # Imported here: the adapters import this module's types.
    if settings.kyc_provider == "persona":
        from diboas.providers.kyc_persona import PersonaConfig, PersonaKyc

        if settings.persona_api_key is None or not settings.persona_inquiry_template_id:
            raise ValueError(
                "DIBOAS_PERSONA_API_KEY and DIBOAS_PERSONA_INQUIRY_TEMPLATE_ID are required"
            )
        return PersonaKyc(
            PersonaConfig(
                api_key=settings.persona_api_key,
                inquiry_template_id=settings.persona_inquiry_template_id,
                base_url=settings.persona_base_url,
                api_version=settings.persona_api_version,
                timeout=settings.kyc_timeout_seconds,
                poll_interval=settings.kyc_poll_interval_seconds,
                poll_timeout=settings.kyc_poll_timeout_seconds,
            )
        )
    from diboas.providers.kyc_jumio import JumioConfig, JumioKyc

    if settings.jumio_api_secret is None or not settings.jumio_api_token:
        raise ValueError("DIBOAS_JUMIO_API_TOKEN and DIBOAS_JUMIO_API_SECRET are required")
    return JumioKyc(
        JumioConfig(
            api_token=settings.jumio_api_token,
            api_secret=settings.jumio_api_secret,
            account_base_url=settings.jumio_account_base_url,
            retrieval_base_url=settings.jumio_retrieval_base_url,
            workflow_key=settings.jumio_workflow_key,
            timeout=settings.kyc_timeout_seconds,
            poll_interval=settings.kyc_poll_interval_seconds,
            poll_timeout=settings.kyc_poll_timeout_seconds,
        )
    )
