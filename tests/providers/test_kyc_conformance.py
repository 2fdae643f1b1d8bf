"""One conformance suite for every KYC provider: the sandbox, and the Persona and Jumio
adapters talking HTTP to local servers that implement those vendors' documented APIs
(tests/providers/fakes). Then each vendor's failures, mapped to ProviderError.retryable."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from diboas.providers.kyc import KycApplicant, KycProvider, SandboxKycProvider, kyc_provider
from diboas.providers.kyc_jumio import JumioConfig, JumioKyc
from diboas.providers.kyc_persona import PersonaConfig, PersonaKyc
from diboas.providers.resilience import (
    ProviderError,
    ProviderTimeoutError,
    RetryPolicy,
    call,
)
from diboas.settings import Settings
from tests.providers.fakes import jumio as jumio_fake
from tests.providers.fakes import persona as persona_fake
from tests.providers.fakes.server import Faults, LocalServer

FAST = {"timeout": 2.0, "poll_interval": 0.01, "poll_timeout": 2.0}


def applicant(last_name: str = "Lovelace", country: str = "GB") -> KycApplicant:
    return KycApplicant(
        first_name="Ada",
        last_name=last_name,
        date_of_birth=date(1990, 12, 10),
        country=country,
        address="12 St James's Square, London",
        document_type="passport",
        document_number="X12345678",
    )


@pytest.fixture(scope="session")
def persona_state() -> persona_fake.PersonaState:
    return persona_fake.PersonaState()


@pytest.fixture(scope="session")
def persona_url(persona_state: persona_fake.PersonaState) -> Iterator[str]:
    with LocalServer(persona_fake.create_app(persona_state)) as url:
        yield url


@pytest.fixture(scope="session")
def jumio_state() -> jumio_fake.JumioState:
    return jumio_fake.JumioState()


@pytest.fixture(scope="session")
def jumio_url(jumio_state: jumio_fake.JumioState) -> Iterator[str]:
    with LocalServer(jumio_fake.create_app(jumio_state)) as url:
        yield url


@pytest.fixture(autouse=True)
def _no_leftover_faults(
    persona_state: persona_fake.PersonaState, jumio_state: jumio_fake.JumioState
) -> Iterator[None]:
    yield
    persona_state.faults.clear()
    jumio_state.faults.clear()


def vendor_settings(choice: str, persona_url: str, jumio_url: str, **values: object) -> Settings:
    """Settings that choose ``choice`` and point the vendors at their local servers."""
    return Settings(
        env="test",
        kyc_provider=choice,
        persona_api_key=SecretStr(persona_fake.API_KEY),
        persona_inquiry_template_id=persona_fake.TEMPLATE_ID,
        persona_base_url=persona_url,
        jumio_api_token=jumio_fake.API_TOKEN,
        jumio_api_secret=SecretStr(jumio_fake.API_SECRET),
        jumio_account_base_url=jumio_url,
        jumio_retrieval_base_url=jumio_url,
        kyc_timeout_seconds=FAST["timeout"],
        kyc_poll_interval_seconds=FAST["poll_interval"],
        kyc_poll_timeout_seconds=FAST["poll_timeout"],
        **values,
    )


def persona_config(url: str, **overrides: object) -> PersonaConfig:
    values: dict[str, object] = {
        "api_key": SecretStr(persona_fake.API_KEY),
        "inquiry_template_id": persona_fake.TEMPLATE_ID,
        "base_url": url,
        **FAST,
        **overrides,
    }
    return PersonaConfig(**values)  # type: ignore[arg-type]


def jumio_config(url: str, **overrides: object) -> JumioConfig:
    values: dict[str, object] = {
        "api_token": jumio_fake.API_TOKEN,
        "api_secret": SecretStr(jumio_fake.API_SECRET),
        "account_base_url": url,
        "retrieval_base_url": url,
        **FAST,
        **overrides,
    }
    return JumioConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["sandbox", "persona", "jumio"])
def provider(
    request: pytest.FixtureRequest, persona_url: str, jumio_url: str, tmp_path: Path
) -> KycProvider:
    return kyc_provider(vendor_settings(request.param, persona_url, jumio_url, data_dir=tmp_path))


# --- the conformance suite: identical decisions from every implementation ---


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
async def test_every_provider_decides_alike(
    provider: KycProvider, last_name: str, status: str, tier: int
) -> None:
    decision = await provider.submit(applicant(last_name))
    assert (decision.status, decision.tier) == (status, tier)
    assert (decision.reason is None) == (status == "approved")
    assert decision.provider_reference


async def test_every_submission_gets_its_own_reference(provider: KycProvider) -> None:
    first, second = await provider.submit(applicant()), await provider.submit(applicant())
    assert first.provider_reference != second.provider_reference


def test_the_factory_names_each_provider(persona_url: str, jumio_url: str) -> None:
    chosen = {
        choice: kyc_provider(vendor_settings(choice, persona_url, jumio_url))
        for choice in ("sandbox", "persona", "jumio")
    }
    assert isinstance(chosen["sandbox"], SandboxKycProvider)
    assert isinstance(chosen["persona"], PersonaKyc)
    assert isinstance(chosen["jumio"], JumioKyc)
    assert {name: p.name for name, p in chosen.items()} == {
        "sandbox": "sandbox",
        "persona": "persona",
        "jumio": "jumio",
    }
    with pytest.raises(ValueError, match="DIBOAS_PERSONA_API_KEY"):
        kyc_provider(Settings(env="test", kyc_provider="persona"))
    with pytest.raises(ValueError, match="DIBOAS_JUMIO_API_TOKEN"):
        kyc_provider(Settings(env="test", kyc_provider="jumio"))
    with pytest.raises(ValidationError):
        Settings(env="test", kyc_provider="onfido")


# --- Persona: protocol, asynchronous decision, errors ---


async def test_persona_receives_its_documented_request(
    persona_url: str, persona_state: persona_fake.PersonaState
) -> None:
    persona_state.requests.clear()
    await PersonaKyc(persona_config(persona_url, api_version="2023-01-05")).submit(applicant())
    create = persona_state.requests[0]
    assert (create["method"], create["path"]) == ("POST", "/api/v1/inquiries")
    assert create["headers"]["authorization"] == f"Bearer {persona_fake.API_KEY}"
    assert create["headers"]["persona-version"] == "2023-01-05"
    assert create["headers"]["idempotency-key"]
    fields = create["json"]["data"]["attributes"]["fields"]
    assert fields == {
        "name-first": "Ada",
        "name-last": "Lovelace",
        "birthdate": "1990-12-10",
        "address-street-1": "12 St James's Square, London",
        "address-country-code": "GB",
        "identification-class": "pp",
        "identification-number": "X12345678",
    }
    # created → pending → completed → approved: three polls of the same inquiry.
    polls = [r for r in persona_state.requests if r["method"] == "GET"]
    assert len(polls) == 3
    assert {r["path"] for r in polls} == {polls[0]["path"]}


async def test_persona_same_idempotency_key_is_the_same_inquiry(persona_url: str) -> None:
    persona = PersonaKyc(persona_config(persona_url))
    first = await persona.submit(applicant(), idempotency_key="kyc-42")
    again = await persona.submit(applicant(), idempotency_key="kyc-42")
    other = await persona.submit(applicant(), idempotency_key="kyc-43")
    assert first.provider_reference == again.provider_reference != other.provider_reference


async def test_persona_undecided_in_time_is_pending_review(persona_url: str) -> None:
    persona = PersonaKyc(persona_config(persona_url, poll_timeout=0.1))
    decision = await persona.submit(applicant("Pending"))
    assert (decision.status, decision.tier) == ("pending_review", 0)
    assert decision.provider_reference.startswith("inq_")
    assert decision.reason == "the provider has not decided yet"


async def test_persona_bad_api_key_is_not_retryable(persona_url: str) -> None:
    persona = PersonaKyc(persona_config(persona_url, api_key=SecretStr("wrong")))
    with pytest.raises(ProviderError) as refused:
        await persona.submit(applicant())
    assert (refused.value.retryable, refused.value.code) == (False, "unauthorized")
    assert "401" in str(refused.value)


async def test_persona_invalid_field_422_is_not_retryable(persona_url: str) -> None:
    with pytest.raises(ProviderError) as refused:
        await PersonaKyc(persona_config(persona_url)).submit(applicant(country="GBR"))
    assert (refused.value.retryable, refused.value.code) == (False, "invalid_request")
    assert "address-country-code is invalid" in str(refused.value)


async def test_persona_unknown_template_is_not_retryable(persona_url: str) -> None:
    persona = PersonaKyc(persona_config(persona_url, inquiry_template_id="itmpl_nope"))
    with pytest.raises(ProviderError) as refused:
        await persona.submit(applicant())
    assert not refused.value.retryable


# --- Jumio: protocol, asynchronous decision, errors ---


async def test_jumio_receives_its_documented_requests(
    jumio_url: str, jumio_state: jumio_fake.JumioState
) -> None:
    jumio_state.requests.clear()
    decision = await JumioKyc(jumio_config(jumio_url)).submit(applicant())
    steps = [(r["method"], r["path"].rsplit("/", 1)[-1]) for r in jumio_state.requests]
    account_id, execution_id = decision.provider_reference.split("/")
    assert steps[:3] == [("POST", "accounts"), ("PUT", "PREPARED_DATA"), ("PUT", execution_id)]
    assert steps[3:] == [("GET", "status"), ("GET", execution_id)]
    assert all(
        r["headers"]["user-agent"] == "diBoaS diboas-platform/1.0" for r in jumio_state.requests
    )
    assert jumio_state.requests[0]["headers"]["authorization"].startswith("Basic ")
    assert jumio_state.requests[1]["headers"]["authorization"].startswith("Bearer ")
    assert jumio_state.requests[1]["json"]["lastName"] == "Lovelace"
    assert jumio_state.requests[1]["json"]["document"] == {
        "type": "PASSPORT",
        "number": "X12345678",
        "issuingCountry": "GB",
    }
    assert account_id in jumio_state.requests[-1]["path"]


async def test_jumio_undecided_in_time_is_pending_review(jumio_url: str) -> None:
    decision = await JumioKyc(jumio_config(jumio_url, poll_timeout=0.1)).submit(
        applicant("Pending")
    )
    assert (decision.status, decision.tier) == ("pending_review", 0)
    assert decision.reason == "the provider has not decided yet"


async def test_jumio_bad_credentials_are_not_retryable(jumio_url: str) -> None:
    jumio = JumioKyc(jumio_config(jumio_url, api_secret=SecretStr("wrong")))
    with pytest.raises(ProviderError) as refused:
        await jumio.submit(applicant())
    assert (refused.value.retryable, refused.value.code) == (False, "unauthorized")


async def test_jumio_without_a_user_agent_is_forbidden(jumio_url: str) -> None:
    with pytest.raises(ProviderError) as refused:
        await JumioKyc(jumio_config(jumio_url, user_agent="")).submit(applicant())
    assert (refused.value.retryable, refused.value.code) == (False, "forbidden")


async def test_jumio_unknown_workflow_400_is_not_retryable(jumio_url: str) -> None:
    with pytest.raises(ProviderError) as refused:
        await JumioKyc(jumio_config(jumio_url, workflow_key=1)).submit(applicant())
    assert (refused.value.retryable, refused.value.code) == (False, "invalid_request")
    assert "workflowDefinition.key" in str(refused.value)


# --- failures both vendors share ---


@pytest.fixture(params=["persona", "jumio"])
def vendor(
    request: pytest.FixtureRequest,
    persona_url: str,
    jumio_url: str,
    persona_state: persona_fake.PersonaState,
    jumio_state: jumio_fake.JumioState,
) -> tuple[KycProvider, Faults]:
    if request.param == "persona":
        return PersonaKyc(persona_config(persona_url, timeout=0.3)), persona_state.faults
    return JumioKyc(jumio_config(jumio_url, timeout=0.3)), jumio_state.faults


async def test_rate_limit_is_retryable_and_says_when(
    vendor: tuple[KycProvider, Faults],
) -> None:
    provider, faults = vendor
    faults.fail_next(429, retry_after=7)
    with pytest.raises(ProviderError) as limited:
        await provider.submit(applicant())
    assert (limited.value.retryable, limited.value.code) == (True, "rate_limited")
    assert "retry after 7s" in str(limited.value)


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(vendor: tuple[KycProvider, Faults], status: int) -> None:
    provider, faults = vendor
    faults.fail_next(status)
    with pytest.raises(ProviderError) as failed:
        await provider.submit(applicant())
    assert (failed.value.retryable, failed.value.code) == (True, "unavailable")
    assert str(status) in str(failed.value)


async def test_no_answer_in_time_is_a_timeout(
    vendor: tuple[KycProvider, Faults],
) -> None:
    provider, faults = vendor
    faults.delay_next(1.5)
    with pytest.raises(ProviderTimeoutError) as slow:
        await provider.submit(applicant())
    assert slow.value.retryable


async def test_a_retried_server_error_then_decides(
    vendor: tuple[KycProvider, Faults],
) -> None:
    provider, faults = vendor
    faults.fail_next(502)
    decision = await call(
        provider.name,
        lambda: provider.submit(applicant("Reject")),
        policy=RetryPolicy(attempts=3, base_delay=0.0, timeout=5.0),
    )
    assert decision.status == "rejected"
    assert not faults.queue


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("choice", ["persona", "jumio"])
async def test_an_unreachable_vendor_is_retryable(choice: str) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    provider = kyc_provider(vendor_settings(choice, url, url))
    with pytest.raises(ProviderError) as unreachable:
        await provider.submit(applicant())
    assert (unreachable.value.retryable, unreachable.value.code) == (True, "unavailable")
