"""Persona's Inquiries API as documented (JSON:API, Bearer API key, Persona-Version,
Idempotency-Key), with its error shape ``{"errors": [{"title", "details", "source"}]}``.

Behaviour: a created inquiry is ``created``; each later GET advances it one step, ``pending``
→ ``completed`` → the decision (``approved``, ``declined`` or ``needs_review``, from the last
name like our sandbox; ``Pending`` stays pending for ever).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
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

API_KEY = "persona_sandbox_key_0123456789"
TEMPLATE_ID = "itmpl_diboasTestTemplate"
_DECISION = {"approve": "approved", "reject": "declined", "review": "needs_review"}
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    422: "Record invalid",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass
class PersonaState:
    """Inquiries, idempotency keys, the requests seen, and the fault queue."""

    inquiries: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)


def _error(status: int, details: str, pointer: str | None = None) -> JSONResponse:
    error: dict[str, Any] = {"title": _TITLES.get(status, "Error"), "details": details}
    if pointer:
        error["source"] = {"pointer": pointer}
    return JSONResponse({"errors": [error]}, status_code=status)


def _fault(status: int, _fault: Fault) -> JSONResponse:
    return _error(status, "injected by the test")


def _validate(fields: Any) -> JSONResponse | None:
    if not isinstance(fields, dict):
        return _error(422, "fields must be an object", "/data/attributes/fields")
    for name in ("name-first", "name-last", "birthdate"):
        if not isinstance(fields.get(name), str) or not fields[name].strip():
            return _error(422, f"{name} can't be blank", f"/data/attributes/fields/{name}")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", fields["birthdate"]):
        return _error(422, "birthdate is invalid", "/data/attributes/fields/birthdate")
    country = fields.get("address-country-code")
    if country is not None and not re.fullmatch(r"[A-Z]{2}", str(country)):
        return _error(
            422, "address-country-code is invalid", "/data/attributes/fields/address-country-code"
        )
    return None


def _body(inquiry: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": {
            "type": "inquiry",
            "id": inquiry["id"],
            "attributes": {
                "status": inquiry["status"],
                "reference-id": inquiry["reference-id"],
                "fields": {k: {"type": "string", "value": v} for k, v in inquiry["fields"].items()},
            },
        }
    }


def create_app(state: PersonaState) -> Starlette:
    async def guard(request: Request) -> Response | None:
        state.requests.append(
            {"method": request.method, "path": request.url.path, "headers": dict(request.headers)}
        )
        injected = await apply_fault(state.faults, _fault)
        if injected is not None:
            return injected
        if bearer(request) != API_KEY:
            return _error(401, "Must be authenticated to access this endpoint.")
        return None

    async def create(request: Request) -> Response:
        refused = await guard(request)
        if refused is not None:
            return refused
        payload = request_json_or_none(await request.body())
        attributes = (
            payload.get("data", {}).get("attributes") if isinstance(payload, dict) else None
        )
        if not isinstance(attributes, dict):
            return _error(400, "param is missing or the value is empty: data")
        state.requests[-1]["json"] = payload
        if attributes.get("inquiry-template-id") != TEMPLATE_ID:
            return _error(
                422, "inquiry-template-id is invalid", "/data/attributes/inquiry-template-id"
            )
        invalid = _validate(attributes.get("fields"))
        if invalid is not None:
            return invalid
        key = request.headers.get("idempotency-key")
        if key and key in state.by_key:
            return JSONResponse(_body(state.inquiries[state.by_key[key]]), status_code=201)
        inquiry = {
            "id": f"inq_{uuid.uuid4().hex[:24]}",
            "status": "created",
            "reference-id": attributes.get("reference-id"),
            "fields": attributes["fields"],
            "outcome": magic_outcome(attributes["fields"]["name-last"]),
        }
        state.inquiries[inquiry["id"]] = inquiry
        if key:
            state.by_key[key] = inquiry["id"]
        return JSONResponse(_body(inquiry), status_code=201)

    async def retrieve(request: Request) -> Response:
        refused = await guard(request)
        if refused is not None:
            return refused
        inquiry = state.inquiries.get(request.path_params["inquiry_id"])
        if inquiry is None:
            return _error(404, "Record not found")
        if inquiry["outcome"] != "pending":
            inquiry["status"] = {
                "created": "pending",
                "pending": "completed",
                "completed": _DECISION.get(inquiry["outcome"], "completed"),
            }.get(inquiry["status"], inquiry["status"])
        elif inquiry["status"] == "created":
            inquiry["status"] = "pending"
        return JSONResponse(_body(inquiry))

    return Starlette(
        routes=[
            Route("/api/v1/inquiries", create, methods=["POST"]),
            Route("/api/v1/inquiries/{inquiry_id}", retrieve, methods=["GET"]),
        ]
    )
