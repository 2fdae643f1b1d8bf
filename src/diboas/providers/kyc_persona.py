"""KYC through Persona's Inquiries API (JSON:API, ``https://api.withpersona.com``).

The flow, as Persona documents it:

1. ``POST /api/v1/inquiries`` with ``data.attributes.inquiry-template-id``, our
   ``reference-id`` and the applicant's details as ``fields`` (``name-first``, ``name-last``,
   ``birthdate``, ``address-street-1``, ``address-country-code``, ``identification-class``,
   ``identification-number``). Headers: ``Authorization: Bearer <API key>``,
   ``Persona-Version`` (pins the response shape) and ``Idempotency-Key`` (a retried create is
   the same inquiry, never a second one).
2. Persona decides asynchronously: the inquiry moves through ``created`` → ``pending`` →
   ``completed`` and then to ``approved``, ``declined`` or ``needs_review`` (``failed`` and
   ``expired`` end it without a decision). We poll ``GET /api/v1/inquiries/{id}`` every
   ``poll_interval`` seconds for at most ``poll_timeout`` seconds.

A decision that has not arrived in time is returned as ``pending_review`` with the inquiry id
as the reference: nothing is lost, the user stays at tier 0, and the answer can be collected
later from the same inquiry. Decisions map as: approved → approved (tier 1); declined, failed,
expired → rejected; needs_review → pending_review.

Errors follow DESIGN §2 and ``resilience``: 4xx (bad key 401, forbidden 403, malformed 400,
invalid 422, conflict 409) are not retryable; 429 and 5xx and connection failures are; no
answer in time is ``ProviderTimeoutError``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from diboas.kit.ids import uuid7
from diboas.providers.kyc import KycApplicant, KycDecision
from diboas.providers.resilience import ProviderError, ProviderTimeoutError

NAME = "persona"
# Persona's identification classes for the document types we accept.
_ID_CLASS = {"passport": "pp", "national_id": "id", "drivers_license": "dl"}
_FINAL = {"approved", "declined", "needs_review", "failed", "expired"}


@dataclass(frozen=True, slots=True)
class PersonaConfig:
    """Where and how to reach Persona."""

    api_key: SecretStr
    inquiry_template_id: str
    base_url: str = "https://api.withpersona.com"
    api_version: str = "2023-01-05"
    timeout: float = 10.0
    poll_interval: float = 1.0
    poll_timeout: float = 15.0


def _fields(applicant: KycApplicant) -> dict[str, str]:
    return {
        "name-first": applicant.first_name,
        "name-last": applicant.last_name,
        "birthdate": applicant.date_of_birth.isoformat(),
        "address-street-1": applicant.address,
        "address-country-code": applicant.country,
        "identification-class": _ID_CLASS[applicant.document_type],
        "identification-number": applicant.document_number,
    }


def _error_detail(response: httpx.Response) -> str:
    # Persona's error body: {"errors": [{"title": ..., "details": ...}]}.
    try:
        errors = response.json().get("errors") or []
        return (
            "; ".join(
                f"{e.get('title', 'error')}: {e.get('details', '')}".rstrip(": ") for e in errors
            )
            or response.reason_phrase
        )
    except (ValueError, AttributeError):
        return response.reason_phrase


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _error_detail(response)
    if status == 429:
        retry_after = response.headers.get("Retry-After", "")
        raise ProviderError(
            f"Persona rate limit (retry after {retry_after or '?'}s): {detail}",
            provider=NAME,
            retryable=True,
            code="rate_limited",
        )
    if status >= 500:
        raise ProviderError(
            f"Persona failed ({status}): {detail}",
            provider=NAME,
            retryable=True,
            code="unavailable",
        )
    code = {401: "unauthorized", 403: "forbidden"}.get(status, "invalid_request")
    raise ProviderError(f"Persona refused ({status}): {detail}", provider=NAME, code=code)


def _decision(inquiry: dict[str, Any]) -> KycDecision:
    reference = str(inquiry["id"])
    status = inquiry["attributes"]["status"]
    if status == "approved":
        return KycDecision(status="approved", tier=1, provider_reference=reference)
    if status == "needs_review":
        return KycDecision(
            status="pending_review",
            tier=0,
            provider_reference=reference,
            reason="the submission needs a manual review",
        )
    if status in _FINAL:
        return KycDecision(
            status="rejected",
            tier=0,
            provider_reference=reference,
            reason=f"the identity could not be verified (inquiry {status})",
        )
    return KycDecision(
        status="pending_review",
        tier=0,
        provider_reference=reference,
        reason="the provider has not decided yet",
    )


class PersonaKyc:
    """``KycProvider`` speaking Persona's Inquiries API (see the module docstring)."""

    name = NAME

    def __init__(self, config: PersonaConfig) -> None:
        self.config = config

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.config.api_key.get_secret_value()}",
            "Persona-Version": self.config.api_version,
            "Accept": "application/json",
        }

    async def _request(
        self, client: httpx.AsyncClient, method: str, path: str, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(
                f"Persona did not answer within {self.config.timeout}s", provider=NAME
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderError(
                f"Persona unreachable: {exc}", provider=NAME, retryable=True, code="unavailable"
            ) from exc
        _raise_for(response)
        try:
            body = response.json()
            shaped = isinstance(body["data"]["attributes"]["status"], str)
        except (ValueError, KeyError, TypeError):
            shaped = False
        if not shaped:
            raise ProviderError(
                "Persona answered with an unexpected body",
                provider=NAME,
                retryable=True,
                code="bad_response",
            )
        return dict(body)

    async def submit(
        self, applicant: KycApplicant, *, idempotency_key: str | None = None
    ) -> KycDecision:
        """Create an inquiry and wait (bounded) for Persona's decision."""
        reference_id = f"diboas_{uuid7().hex}"
        payload = {
            "data": {
                "attributes": {
                    "inquiry-template-id": self.config.inquiry_template_id,
                    "reference-id": reference_id,
                    "fields": _fields(applicant),
                }
            }
        }
        async with httpx.AsyncClient(
            base_url=self.config.base_url, timeout=self.config.timeout, headers=self._headers()
        ) as client:
            created = await self._request(
                client,
                "POST",
                "/api/v1/inquiries",
                json=payload,
                headers={"Idempotency-Key": idempotency_key or reference_id},
            )
            inquiry: dict[str, Any] = created["data"]
            deadline = time.monotonic() + self.config.poll_timeout
            while inquiry["attributes"]["status"] not in _FINAL and time.monotonic() < deadline:
                await asyncio.sleep(self.config.poll_interval)
                fetched = await self._request(client, "GET", f"/api/v1/inquiries/{inquiry['id']}")
                inquiry = fetched["data"]
        return _decision(inquiry)
