"""Web security: cookie attributes, CSRF refusals that change nothing, the Content-Security-
Policy on every page, escaping of user text, no open redirect, sessions shared with the API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.api.app import create_app
from diboas.db.urls import plain_url
from diboas.web.security import CSRF_FIELD
from tests.api.conftest import STRONG_PASSWORD, Mailbox, new_email, settings_for_tests, sign_in
from tests.web.helpers import hidden_fields, post_form, web_sign_up, web_verify

SIGNED_IN_PAGES = (
    "/app",
    "/app/deposit",
    "/app/withdraw",
    "/app/send",
    "/app/transactions",
    "/app/settings",
    "/app/kyc",
)
PUBLIC_PAGES = ("/", "/banking", "/investing", "/defi", "/fees", "/learn", "/app/login")


def _set_cookie(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0].lower()


async def _users_named(engine: AsyncEngine, email: str) -> int:
    async with engine.connect() as conn:
        query = text("SELECT count(*) FROM users WHERE email = :e")
        return int((await conn.execute(query, {"e": email})).scalar_one())


async def test_cookies_over_plain_http_are_httponly_and_samesite(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/app/signup")
    csrf = _set_cookie(page, "diboas_csrf")
    address = new_email()
    response = await client.post(
        "/app/signup",
        data={
            **hidden_fields(page.text),
            "full_name": "Ada",
            "email": address,
            "password": STRONG_PASSWORD,
        },
    )
    session = _set_cookie(response, "diboas_session")
    for cookie in (csrf, session):
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "path=/" in cookie
        # Development and test speak plain http: a Secure cookie would never come back.
        assert "secure" not in cookie
        assert "max-age" not in cookie  # ends with the browser; the server keeps its expiry


@pytest.fixture
async def https_client(
    database_url: URL, mailbox: tuple[Mailbox, int]
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for_tests(mailbox[1]), database_url=plain_url(database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            yield c


async def test_cookies_over_https_are_secure_with_the_host_prefix(
    https_client: httpx.AsyncClient,
) -> None:
    page = await https_client.get("/app/login")
    cookie = _set_cookie(page, "__Host-diboas_csrf")
    assert "secure" in cookie
    assert "httponly" in cookie
    assert "domain=" not in cookie
    assert page.headers["strict-transport-security"].startswith("max-age=31536000")
    await web_sign_up(https_client)
    assert (await https_client.get("/app")).status_code == 200


@pytest.fixture
async def production_client(
    database_url: URL, mailbox: tuple[Mailbox, int]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for_tests(
        mailbox[1],
        env="production",
        secret_key="a-production-grade-secret-key-of-48-characters!!",
        encryption_key="a-production-grade-encryption-key-of-48-chars!!!",
        run_worker_in_process=False,
    )
    app = create_app(settings, database_url=plain_url(database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_production_cookies_are_secure_even_behind_a_plain_http_hop(
    production_client: httpx.AsyncClient,
) -> None:
    cookie = _set_cookie(await production_client.get("/app/login"), "__Host-diboas_csrf")
    assert "secure" in cookie


async def test_a_form_without_a_csrf_token_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await client.get("/app/signup")  # the CSRF cookie is set; the token is left out
    address = new_email()
    data = {"full_name": "Mallory", "email": address, "password": STRONG_PASSWORD}
    response = await client.post("/app/signup", data=data)
    assert response.status_code == 403
    assert "This form has expired" in response.text
    wrong = await client.post("/app/signup", data={**data, CSRF_FIELD: "x" * 43})
    assert wrong.status_code == 403
    assert await _users_named(engine, address) == 0


async def test_a_signed_in_form_refuses_a_missing_wrong_or_foreign_token(
    client: httpx.AsyncClient, engine: AsyncEngine, database_url: URL, mailbox: tuple[Mailbox, int]
) -> None:
    await web_sign_up(client)
    await web_verify(client)
    form = hidden_fields((await client.get("/app/deposit")).text)
    movement = {"amount": "10.00", "method": "card", "payment_method": "pm_card_visa"}

    # Another signed-in browser's valid token is worthless here (bound to its own session).
    app = create_app(settings_for_tests(mailbox[1]), database_url=plain_url(database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
            await web_sign_up(other)
            foreign = hidden_fields((await other.get("/app/deposit")).text)[CSRF_FIELD]

    attempts = [
        {**movement, "form_key": form["form_key"]},
        {**movement, "form_key": form["form_key"], CSRF_FIELD: form[CSRF_FIELD][:-2] + "AA"},
        {**movement, "form_key": form["form_key"], CSRF_FIELD: foreign},
    ]
    for data in attempts:
        response = await client.post("/app/deposit", data=data)
        assert response.status_code == 403
    me = await client.get("/app/transactions")
    assert "No transactions yet" in me.text
    async with engine.connect() as conn:
        key = form["form_key"]  # a movement that ran would have claimed the form's key
        stored = await conn.execute(
            text("SELECT count(*) FROM idempotency_keys WHERE key = :k"), {"k": key}
        )
        assert stored.scalar_one() == 0
    # The real token still works: the refusals were about the token, not the request.
    accepted = await client.post("/app/deposit", data={**movement, **form})
    assert accepted.status_code == 200
    assert 'data-testid="review"' in accepted.text


async def test_every_page_carries_a_strict_content_security_policy(
    client: httpx.AsyncClient,
) -> None:
    pages = [(path, await client.get(path)) for path in (*PUBLIC_PAGES, "/app/signup")]
    await web_sign_up(client)
    pages += [(path, await client.get(path)) for path in SIGNED_IN_PAGES]
    for path, response in pages:
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["script-src"] == "'self'", path
        assert "unsafe-inline" not in policy
        assert directives["frame-ancestors"] == "'none'"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in response.text  # no inline script at all
        if path in SIGNED_IN_PAGES:
            assert response.headers["cache-control"] == "no-store", path


async def test_the_api_docs_keep_their_own_headers(client: httpx.AsyncClient) -> None:
    # Swagger UI loads from a CDN by default; the web's policy is for the web's pages only.
    response = await client.get("/api/v1/docs")
    assert response.status_code == 200
    assert "content-security-policy" not in response.headers


async def test_user_text_is_escaped_everywhere_it_is_shown(client: httpx.AsyncClient) -> None:
    name = '<script>alert(1)</script><img src=x onerror="alert(2)">&amp;'
    await web_sign_up(client, name=name)
    for path in ("/app/kyc?welcome=1", "/app", "/app/settings"):
        page = (await client.get(path)).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "&amp;amp;" in page  # even an entity is shown as typed


async def test_signed_out_visitors_are_sent_to_sign_in(client: httpx.AsyncClient) -> None:
    for path in SIGNED_IN_PAGES:
        response = await client.get(path)
        assert response.status_code == 303, path
        expected = "/app/login" if path == "/app" else f"/app/login?next={path}"
        assert response.headers["location"] == expected


@pytest.mark.parametrize(
    "target", ["https://evil.example/app", "//evil.example/app", "/\\evil.example", "/api/v1/me"]
)
async def test_sign_in_never_redirects_off_the_app(client: httpx.AsyncClient, target: str) -> None:
    address = await web_sign_up(client)
    await post_form(client, "/app/logout", {}, form_page="/app")
    login = await client.get("/app/login", params={"next": target})
    response = await client.post(
        "/app/login",
        params={"next": target},
        data={**hidden_fields(login.text), "email": address, "password": STRONG_PASSWORD},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/app"


async def test_a_browser_session_is_an_identity_session(client: httpx.AsyncClient) -> None:
    address = await web_sign_up(client)
    api = await sign_in(client, address)  # a second session, through the API
    sessions = (await client.get("/api/v1/me/sessions", headers=api["headers"])).json()
    assert len(sessions) == 2  # the browser's and the API's

    settings_page = (await client.get("/app/settings")).text
    assert settings_page.count('data-testid="session-row"') == 2
    browser_session = next(s for s in sessions if not s["current"])
    # Revoked through the API: the browser is signed out at its next request.
    revoked = await client.delete(
        f"/api/v1/me/sessions/{browser_session['id']}", headers=api["headers"]
    )
    assert revoked.status_code == 204
    assert (await client.get("/app")).status_code == 303


async def test_signing_out_ends_the_session_for_a_replayed_cookie(
    client: httpx.AsyncClient,
) -> None:
    await web_sign_up(client)
    cookies = dict(client.cookies)
    response = await post_form(client, "/app/logout", {}, form_page="/app")
    assert response.headers["location"] == "/app/login?signed_out=1"
    client.cookies.clear()
    for name, value in cookies.items():
        client.cookies.set(name, value)
    assert (await client.get("/app")).status_code == 303


async def test_a_forged_session_cookie_is_ignored(client: httpx.AsyncClient) -> None:
    client.cookies.set("diboas_session", f"{uuid.uuid4().hex}.{uuid.uuid4().hex}.AAAA")
    assert (await client.get("/app")).status_code == 303


@pytest.fixture
async def metered_client(
    database_url: URL, mailbox: tuple[Mailbox, int]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = settings_for_tests(
        mailbox[1],
        rate_limits_enabled=True,
        auth_rate_limit="3/minute",
        run_worker_in_process=False,
    )
    app = create_app(settings, database_url=plain_url(database_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def test_the_sign_in_form_shares_the_apis_credential_budget(
    metered_client: httpx.AsyncClient,
) -> None:
    # The web's sign-in is no way around the API's limit on /api/v1/auth/*.
    statuses = []
    for _ in range(4):
        response = await post_form(
            metered_client,
            "/app/login",
            {"email": "nobody@example.com", "password": "not-a-password-of-anyone"},
        )
        statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 429]
    assert int(response.headers["retry-after"]) >= 1
    assert "too many attempts" in response.text
    # Pages themselves are not metered.
    assert (await metered_client.get("/app/login")).status_code == 200
