"""KYC through Jumio's KYX platform API (account + workflow execution).

The flow, as Jumio documents it (API channel):

1. ``POST {account}/api/v1/accounts`` with HTTP Basic auth (API token : API secret) and a
   ``User-Agent`` naming us (Jumio refuses calls without one). The body names the workflow
   (``workflowDefinition.key``) and asks for a ``DATA`` credential; it carries only our
   references (``customerInternalReference``, ``userReference``), never personal data.
   The answer holds ``account.id``, ``workflowExecution.id`` and, per credential, a short-lived
   ``api.token`` with the hrefs to upload parts and to finalise the workflow.
2. ``PUT`` the applicant's details to the credential's ``prepared_data`` part, then ``PUT``
   the ``workflowExecution`` href to finalise; both with ``Authorization: Bearer <api.token>``.
3. Jumio processes asynchronously. ``GET {retrieval}/api/v1/accounts/{account}/
   workflow-executions/{id}/status`` says ``INITIATED`` / ``ACQUIRED`` / ``PROCESSED`` (or
   ``SESSION_EXPIRED`` / ``TOKEN_EXPIRED``); once ``PROCESSED``, ``GET`` the workflow details
   for ``decision.type``: ``PASSED`` → approved (tier 1), ``REJECTED`` → rejected,
   ``WARNING`` or ``NOT_EXECUTED`` → pending_review. An expired session is rejected.

Polling is bounded (``poll_interval``, ``poll_timeout``): a workflow still processing at the
deadline is returned as ``pending_review`` with ``account-id/workflow-execution-id`` as the
reference, so the decision can be collected later from the same workflow.

Errors: 400/401/403/404 are not retryable (403 is also what a missing ``User-Agent`` gets);
429, 5xx and connection failures are; no answer in time is ``ProviderTimeoutError``.
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

NAME = "jumio"
_DOCUMENT_TYPE = {
    "passport": "PASSPORT",
    "national_id": "ID_CARD",
    "drivers_license": "DRIVING_LICENSE",
}


@dataclass(frozen=True, slots=True)
class JumioConfig:
    """Where and how to reach Jumio (regional hosts: amer-1, emea-1, apac-1)."""

    api_token: str
    api_secret: SecretStr
    account_base_url: str = "https://account.amer-1.jumio.ai"
    retrieval_base_url: str = "https://retrieval.amer-1.jumio.ai"
    workflow_key: int = 10020
    user_agent: str = "diBoaS diboas-platform/1.0"
    timeout: float = 10.0
    poll_interval: float = 1.0
    poll_timeout: float = 15.0


def _prepared_data(applicant: KycApplicant) -> dict[str, Any]:
    return {
        "firstName": applicant.first_name,
        "lastName": applicant.last_name,
        "dateOfBirth": applicant.date_of_birth.isoformat(),
        "address": {"line1": applicant.address, "country": applicant.country},
        "document": {
            "type": _DOCUMENT_TYPE[applicant.document_type],
            "number": applicant.document_number,
            "issuingCountry": applicant.country,
        },
    }


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or response.reason_phrase)
    return response.reason_phrase


def _raise_for(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _error_detail(response)
    if status == 429:
        retry_after = response.headers.get("Retry-After", "")
        raise ProviderError(
            f"Jumio rate limit (retry after {retry_after or '?'}s): {detail}",
            provider=NAME,
            retryable=True,
            code="rate_limited",
        )
    if status >= 500:
        raise ProviderError(
            f"Jumio failed ({status}): {detail}", provider=NAME, retryable=True, code="unavailable"
        )
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(status, "invalid_request")
    raise ProviderError(f"Jumio refused ({status}): {detail}", provider=NAME, code=code)


def _decision(reference: str, workflow: dict[str, Any]) -> KycDecision:
    kind = (workflow.get("decision") or {}).get("type")
    label = ((workflow.get("decision") or {}).get("details") or {}).get("label")
    if kind == "PASSED":
        return KycDecision(status="approved", tier=1, provider_reference=reference)
    if kind == "REJECTED":
        return KycDecision(
            status="rejected",
            tier=0,
            provider_reference=reference,
            reason=f"the identity document could not be verified ({label or 'rejected'})",
        )
    return KycDecision(
        status="pending_review",
        tier=0,
        provider_reference=reference,
        reason=f"the submission needs a manual review ({label or kind or 'undecided'})",
    )


class JumioKyc:
    """``KycProvider`` speaking Jumio's KYX account/workflow API (see the module docstring)."""

    name = NAME

    def __init__(self, config: JumioConfig) -> None:
        self.config = config

    async def _call(
        self, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise ProviderTimeoutError(
                f"Jumio did not answer within {self.config.timeout}s", provider=NAME
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderError(
                f"Jumio unreachable: {exc}", provider=NAME, retryable=True, code="unavailable"
            ) from exc
        _raise_for(response)
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderError(
                "Jumio answered with an unexpected body",
                provider=NAME,
                retryable=True,
                code="bad_response",
            ) from exc
        if not isinstance(body, dict):
            raise ProviderError(
                "Jumio answered with an unexpected body",
                provider=NAME,
                retryable=True,
                code="bad_response",
            )
        return body

    async def submit(self, applicant: KycApplicant) -> KycDecision:
        """Create an account with a workflow, upload the data, finalise, wait (bounded)."""
        c = self.config
        basic = httpx.BasicAuth(c.api_token, c.api_secret.get_secret_value())
        headers = {"User-Agent": c.user_agent, "Accept": "application/json"}
        body = {
            "customerInternalReference": f"diboas_{uuid7().hex}",
            "userReference": f"diboas_{uuid7().hex}",
            "workflowDefinition": {"key": c.workflow_key, "credentials": [{"category": "DATA"}]},
        }
        async with httpx.AsyncClient(timeout=c.timeout, headers=headers) as client:
            try:
                created = await self._call(
                    client, "POST", f"{c.account_base_url}/api/v1/accounts", json=body, auth=basic
                )
                account_id = str(created["account"]["id"])
                execution = created["workflowExecution"]
                execution_id = str(execution["id"])
                credential = next(x for x in execution["credentials"] if x["category"] == "DATA")
                api = credential["api"]
                bearer = {"Authorization": f"Bearer {api['token']}"}
                upload_url, finalise_url = api["parts"]["prepared_data"], api["workflowExecution"]
            except (KeyError, TypeError, StopIteration) as exc:
                raise ProviderError(
                    "Jumio's account answer lacks the workflow credential",
                    provider=NAME,
                    retryable=True,
                    code="bad_response",
                ) from exc
            reference = f"{account_id}/{execution_id}"
            await self._call(
                client, "PUT", upload_url, json=_prepared_data(applicant), headers=bearer
            )
            await self._call(client, "PUT", finalise_url, headers=bearer)

            base = f"{c.retrieval_base_url}/api/v1/accounts/{account_id}/workflow-executions/{execution_id}"
            deadline = time.monotonic() + c.poll_timeout
            while True:
                status = await self._call(client, "GET", f"{base}/status", auth=basic)
                state = (status.get("workflowExecution") or {}).get("status")
                if state == "PROCESSED":
                    return _decision(reference, await self._call(client, "GET", base, auth=basic))
                if state in {"SESSION_EXPIRED", "TOKEN_EXPIRED"}:
                    return KycDecision(
                        status="rejected",
                        tier=0,
                        provider_reference=reference,
                        reason=f"the verification expired ({state})",
                    )
                if time.monotonic() >= deadline:
                    return KycDecision(
                        status="pending_review",
                        tier=0,
                        provider_reference=reference,
                        reason="the provider has not decided yet",
                    )
                await asyncio.sleep(c.poll_interval)
