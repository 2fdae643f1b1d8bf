"""The sandbox KYC provider decides by the documented magic last names, never at random."""

from __future__ import annotations

from datetime import date

import pytest

from diboas.providers.kyc import KycApplicant, SandboxKycProvider, kyc_provider
from diboas.settings import Settings


def applicant(last_name: str = "Lovelace") -> KycApplicant:
    return KycApplicant(
        first_name="Ada",
        last_name=last_name,
        date_of_birth=date(1990, 12, 10),
        country="GB",
        address="12 St James's Square, London",
        document_type="passport",
        document_number="X12345678",
    )


@pytest.mark.parametrize(
    ("last_name", "status", "tier"),
    [
        ("Lovelace", "approved", 1),
        ("Rejected", "approved", 1),
        ("Reject", "rejected", 0),
        ("REJECT", "rejected", 0),
        ("Review", "pending_review", 0),
        (" review ", "pending_review", 0),
    ],
)
async def test_the_sandbox_decides_by_last_name(last_name: str, status: str, tier: int) -> None:
    decision = await SandboxKycProvider().submit(applicant(last_name))
    assert (decision.status, decision.tier) == (status, tier)
    assert decision.provider_reference.startswith("sbx_inq_")
    assert (decision.reason is None) == (status == "approved")


async def test_each_submission_gets_its_own_reference() -> None:
    provider = SandboxKycProvider()
    first, second = await provider.submit(applicant()), await provider.submit(applicant())
    assert first.provider_reference != second.provider_reference


def test_settings_choose_the_sandbox() -> None:
    provider = kyc_provider(Settings(env="test"))
    assert isinstance(provider, SandboxKycProvider)
    assert provider.name == "sandbox"


def test_an_applicant_never_prints_its_document_number_or_address() -> None:
    shown = repr(applicant()) + str(applicant())
    assert "X12345678" not in shown and "James" not in shown
    assert "passport" in shown
