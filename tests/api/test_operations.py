"""Health, readiness, metrics, the OpenAPI document and the one error format."""

from __future__ import annotations

from datetime import timedelta

import httpx

from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.orchestration import jobs


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


async def test_readyz_is_503_without_a_database(client_without_database: httpx.AsyncClient) -> None:
    response = await client_without_database.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    # Liveness does not depend on the database.
    assert (await client_without_database.get("/healthz")).status_code == 200


async def test_metrics_expose_request_durations(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert (
        'diboas_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}'
        in response.text
    )


async def test_openapi_document_is_served_under_api_v1(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["info"]["title"] == "diBoaS API"
    assert "/healthz" in document["paths"]


async def test_unknown_route_uses_the_error_format_with_a_request_id(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["request_id"] == response.headers["x-request-id"]
    assert len(error["request_id"]) == 32


async def test_a_safe_incoming_request_id_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "trace-abc-12345"})
    assert response.headers["x-request-id"] == "trace-abc-12345"
    forged = await client.get("/healthz", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert forged.headers["x-request-id"] != "<script>alert(1)</script>"


async def test_wrong_method_is_405_in_the_error_format(client: httpx.AsyncClient) -> None:
    response = await client.post("/healthz")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_metrics_expose_queue_depth(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    # A job due in an hour is certainly still queued when /metrics is scraped.
    await run_in_transaction(
        sessions,
        lambda s: jobs.stage(
            s,
            "notifications.send_email",
            {
                "to": "nobody@bounce.example.com",
                "name": "Q",
                "purpose": "password_reset",
                "token": "t",
            },
            delay=timedelta(hours=1),
        ),
    )
    response = await client.get("/metrics")
    assert 'diboas_jobs{entrypoint="notifications.send_email",status="queued"}' in response.text
