"""Jumio's KYX account/workflow API as documented: account creation with HTTP Basic auth
(API token : secret) and a required, non-library ``User-Agent`` (missing → 403), per-credential
Bearer tokens for data upload and finalisation, retrieval of status and workflow details.

Behaviour: after finalisation the workflow is ``ACQUIRED``; the next status poll finds it
``PROCESSED`` with ``decision.type`` ``PASSED``, ``REJECTED`` or ``WARNING`` from the last name
like our sandbox (``Pending`` stays ``ACQUIRED`` for ever). Unknown workflow keys are a 400.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.providers.fakes.server import (
    Fault,
    Faults,
    apply_fault,
    bearer,
    magic_outcome,
    request_json_or_none,
)

API_TOKEN = "jumio-api-token"
API_SECRET = "jumio-api-secret-0123456789"
WORKFLOW_KEYS = {10020, 10011}
_DECISION = {
    "approve": ("PASSED", "OK"),
    "reject": ("REJECTED", "NO_MATCH"),
    "review": ("WARNING", "NOT_POSSIBLE"),
}


@dataclass
class JumioState:
    """Workflow executions, the requests seen, and the fault queue."""

    executions: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"timestamp": _now(), "status": status, "message": message}, status_code=status
    )


def _fault(status: int, _fault: Fault) -> JSONResponse:
    return _error(status, "injected by the test")


def _basic_ok(request: Request) -> bool:
    value = request.headers.get("authorization", "")
    if not value.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
    except ValueError:
        return False
    return (user, password) == (API_TOKEN, API_SECRET)


def create_app(state: JumioState) -> Starlette:
    async def guard(request: Request, *, basic: bool) -> Response | None:
        state.requests.append(
            {"method": request.method, "path": request.url.path, "headers": dict(request.headers)}
        )
        injected = await apply_fault(state.faults, _fault)
        if injected is not None:
            return injected
        agent = request.headers.get("user-agent", "").strip()
        if not agent or agent.startswith("python-httpx"):
            return _error(403, "Forbidden: a User-Agent naming the customer is required")
        if basic and not _basic_ok(request):
            return _error(401, "Unauthorized")
        return None

    def execution_for(request: Request) -> dict[str, Any] | None:
        execution = state.executions.get(request.path_params["execution_id"])
        if execution is None or execution["account_id"] != request.path_params["account_id"]:
            return None
        return execution

    async def create_account(request: Request) -> Response:
        refused = await guard(request, basic=True)
        if refused is not None:
            return refused
        body = request_json_or_none(await request.body())
        if not isinstance(body, dict):
            return _error(400, "Bad Request: the body is not JSON")
        reference = body.get("customerInternalReference")
        if not isinstance(reference, str) or not 0 < len(reference) <= 100:
            return _error(400, "customerInternalReference is mandatory (max 100)")
        definition = body.get("workflowDefinition") or {}
        if definition.get("key") not in WORKFLOW_KEYS:
            return _error(400, "workflowDefinition.key is not valid")
        account_id, execution_id, credential_id = (str(uuid.uuid4()) for _ in range(3))
        token = uuid.uuid4().hex
        base = f"{request.base_url}".rstrip("/")
        execution_url = f"{base}/api/v1/accounts/{account_id}/workflow-executions/{execution_id}"
        state.executions[execution_id] = {
            "account_id": account_id,
            "token": token,
            "status": "INITIATED",
            "data": None,
            "key": definition["key"],
            "reference": reference,
        }
        return JSONResponse(
            {
                "timestamp": _now(),
                "account": {"id": account_id},
                "workflowExecution": {
                    "id": execution_id,
                    "credentials": [
                        {
                            "id": credential_id,
                            "category": "DATA",
                            "allowedChannels": ["API"],
                            "api": {
                                "token": token,
                                "parts": {
                                    "prepared_data": f"{execution_url}/credentials/{credential_id}/parts/PREPARED_DATA"
                                },
                                "workflowExecution": execution_url,
                            },
                        }
                    ],
                },
            }
        )

    async def upload(request: Request) -> Response:
        refused = await guard(request, basic=False)
        if refused is not None:
            return refused
        execution = execution_for(request)
        if execution is None:
            return _error(404, "Not Found")
        if bearer(request) != execution["token"]:
            return _error(401, "Unauthorized")
        data = request_json_or_none(await request.body())
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) and data[k]
            for k in ("firstName", "lastName", "dateOfBirth")
        ):
            return _error(400, "prepared data needs firstName, lastName and dateOfBirth")
        state.requests[-1]["json"] = data
        execution["data"] = data
        return JSONResponse({"timestamp": _now(), "account": {"id": execution["account_id"]}})

    async def finalise(request: Request) -> Response:
        refused = await guard(request, basic=False)
        if refused is not None:
            return refused
        execution = execution_for(request)
        if execution is None:
            return _error(404, "Not Found")
        if bearer(request) != execution["token"]:
            return _error(401, "Unauthorized")
        if execution["data"] is None:
            return _error(400, "credential DATA has no parts")
        execution["status"] = "ACQUIRED"
        return JSONResponse(
            {
                "timestamp": _now(),
                "account": {"id": execution["account_id"]},
                "workflowExecution": {"id": request.path_params["execution_id"]},
            }
        )

    async def status(request: Request) -> Response:
        refused = await guard(request, basic=True)
        if refused is not None:
            return refused
        execution = execution_for(request)
        if execution is None:
            return _error(404, "Not Found")
        if (
            execution["status"] == "ACQUIRED"
            and magic_outcome(execution["data"]["lastName"]) != "pending"
        ):
            execution["status"] = "PROCESSED"
        return JSONResponse(
            {
                "account": {"id": execution["account_id"]},
                "workflowExecution": {
                    "id": request.path_params["execution_id"],
                    "definitionKey": str(execution["key"]),
                    "status": execution["status"],
                },
            }
        )

    async def details(request: Request) -> Response:
        refused = await guard(request, basic=True)
        if refused is not None:
            return refused
        execution = execution_for(request)
        if execution is None:
            return _error(404, "Not Found")
        body: dict[str, Any] = {
            "account": {"id": execution["account_id"]},
            "workflow": {
                "id": request.path_params["execution_id"],
                "status": execution["status"],
                "definitionKey": str(execution["key"]),
                "customerInternalReference": execution["reference"],
            },
        }
        if execution["status"] == "PROCESSED":
            kind, label = _DECISION[magic_outcome(execution["data"]["lastName"])]
            body["decision"] = {"type": kind, "details": {"label": label}, "risk": {"score": 0}}
        return JSONResponse(body)

    execution = "/api/v1/accounts/{account_id}/workflow-executions/{execution_id}"
    return Starlette(
        routes=[
            Route("/api/v1/accounts", create_account, methods=["POST"]),
            Route(
                f"{execution}/credentials/{{credential_id}}/parts/PREPARED_DATA",
                upload,
                methods=["PUT"],
            ),
            Route(execution, finalise, methods=["PUT"]),
            Route(execution, details, methods=["GET"]),
            Route(f"{execution}/status", status, methods=["GET"]),
        ]
    )
